import Foundation
import Glibc
import Synchronization

// Load that checks what clients see across a handoff (reload, scale-down, upgrade):
// idle clients whose sessions must survive, busy clients whose every request must be
// answered exactly once, chat members that must hear every message once and in order.
// Nothing is ever re-sent: a request without its reply counts as lost.

/// A connection's session as `detailsView` shows it.
struct SessionView: Equatable, CustomStringConvertible {
    let id: String
    let remoteIP: String
    let remotePort: Int64
    let connectedAt: Int64
    let params: String
    let rooms: [String]
    let totalActions: Int64
    var description: String { "\(id) \(remoteIP):\(remotePort) at \(connectedAt) params \(params) rooms \(rooms) actions \(totalActions)" }

    init(_ data: JSON) {
        id = data["id"]?.stringValue ?? ""
        remoteIP = data["remoteIP"]?.stringValue ?? ""
        remotePort = data["remotePort"]?.intValue ?? -1
        connectedAt = data["connectedAt"]?.intValue ?? -1
        params = data["params"]?.description ?? ""
        rooms = (data["rooms"]?.arrayValue ?? []).compactMap(\.stringValue)
        totalActions = data["totalActions"]?.intValue ?? -1
    }
}

/// Idle clients with sticky params in a room; `check` asserts each kept its session
/// and gets the next messageCount, and that none got a goodbye.
final class IdleClients {
    struct Client {
        let connection: LineClient
        var view: SessionView
        var messageCount: Int64
    }
    private(set) var clients: [Client] = []
    let room: String

    init(port: UInt16, count: Int, room: String = "handoffRoom") throws {
        self.room = room
        for index in 0..<count {
            let connection = try LineClient(port: port)
            _ = try connection.readLine()  // welcome
            try connection.sendRaw("paramAdd user=u\(index)\r\nroomAdd \(room)\r\ndetailsView\r\n")
            for _ in 0..<2 {
                let reply = try JSON.parse(try connection.readLine())
                guard reply["status"]?.stringValue == "OK" else { throw HarnessError.mismatch("setup reply: \(reply)") }
            }
            let details = try JSON.parse(try connection.readLine())
            guard let data = details["data"], let count = details["messageCount"]?.intValue else {
                throw HarnessError.mismatch("detailsView: \(details)")
            }
            clients.append(Client(connection: connection, view: SessionView(data), messageCount: count))
        }
    }

    /// Each client asks `detailsView` (and nothing else arrived before the reply): problems found.
    func check() -> [String] {
        var problems: [String] = []
        for index in clients.indices {
            let client = clients[index]
            do {
                try client.connection.send("detailsView")
                let line = try client.connection.readLine()
                let reply = try JSON.parse(line)
                guard let data = reply["data"] else {
                    problems.append("client \(index): \(line)")
                    continue
                }
                let view = SessionView(data)
                if view != client.view { problems.append("client \(index): session \(client.view) became \(view)") }
                let count = reply["messageCount"]?.intValue ?? -1
                if count != client.messageCount + 1 { problems.append("client \(index): messageCount \(count) after \(client.messageCount)") }
                clients[index].messageCount = count
            } catch {
                problems.append("client \(index): \(error)")
            }
        }
        return problems
    }

    /// The server ids (the `status` action) serving the first `count` clients.
    func serverIDs(first count: Int = 20) throws -> Set<String> {
        var ids = Set<String>()
        for index in clients.indices.prefix(count) {
            try clients[index].connection.send("status")
            let reply = try JSON.parse(try clients[index].connection.readLine())
            guard let id = reply["id"]?.stringValue else { throw HarnessError.mismatch("status: \(reply)") }
            clients[index].messageCount += 1
            ids.insert(id)
        }
        return ids
    }

    func close() { for client in clients { client.connection.close() } }
}

/// Clients that run `action` back to back on their own threads, counting requests and
/// replies and checking the messageCounts are consecutive, until `stop`.
final class BusyClients: @unchecked Sendable {
    let sent = Atomic<Int>(0)
    let replies = Atomic<Int>(0)
    let goodbyes = Atomic<Int>(0)
    /// The longest wait for one reply, in microseconds.
    let longestWaitMicros = Atomic<Int>(0)
    private let stopping = Atomic<Bool>(false)
    private let problems = Mutex<[String]>([])
    private let group = DispatchGroup()

    init(port: UInt16, count: Int, action: String = "randomNumber") throws {
        var connections: [LineClient] = []
        for _ in 0..<count {
            let connection = try LineClient(port: port)
            _ = try connection.readLine()
            connections.append(connection)
        }
        for (index, connection) in connections.enumerated() {
            group.enter()
            let connectionBox = UncheckedBox(connection)
            Thread.detachNewThread { [self] in
                defer { group.leave() }
                run(index, connectionBox.value, action)
            }
        }
    }

    private func run(_ index: Int, _ connection: LineClient, _ action: String) {
        var messageCount: Int64 = 0
        while !stopping.load(ordering: .relaxed) {
            let started = nowMicros()
            do {
                try connection.send(action)
                sent.add(1, ordering: .relaxed)
                messageCount += 1
                let line = try connection.readLine(timeout: 10)
                let reply = try JSON.parse(line)
                if reply["status"]?.stringValue == "Bye!" {
                    goodbyes.add(1, ordering: .relaxed)
                    problems.withLock { $0.append("client \(index): goodbye \(line)") }
                    return
                }
                replies.add(1, ordering: .relaxed)
                let got = reply["messageCount"]?.intValue ?? -1
                if got != messageCount || reply["error"] != nil {
                    problems.withLock { $0.append("client \(index): expected messageCount \(messageCount), got \(line)") }
                    return
                }
                let waited = nowMicros() - started
                var longest = longestWaitMicros.load(ordering: .relaxed)
                while waited > longest {
                    let (exchanged, original) = longestWaitMicros.compareExchange(expected: longest, desired: waited, ordering: .relaxed)
                    if exchanged { break }
                    longest = original
                }
            } catch {
                problems.withLock { $0.append("client \(index): \(error) after \(messageCount - 1) replies") }
                return
            }
        }
        connection.close()
    }

    /// Stops the clients (each finishes its request in flight) and returns the problems seen.
    func stop() -> [String] {
        stopping.store(true, ordering: .relaxed)
        group.wait()
        return problems.withLock { $0 }
    }

    var lost: Int { sent.load(ordering: .relaxed) - replies.load(ordering: .relaxed) }
}

/// Chat members in a room hearing one publisher that says numbered messages at a steady
/// rate; `stop` checks each member heard 1…n exactly once, in order.
final class ChatLoad: @unchecked Sendable {
    private let members: [LineClient]
    private let publisher: LineClient
    private let stopping = Atomic<Bool>(false)
    private let said = Atomic<Int>(0)
    private let group = DispatchGroup()
    private let problems = Mutex<[String]>([])

    init(port: UInt16, members count: Int, room: String = "chatRoom", intervalMicros: UInt32 = 5_000) throws {
        var members: [LineClient] = []
        for _ in 0..<count {
            let member = try LineClient(port: port)
            _ = try member.readLine()
            try member.send("roomChange \(room)")
            _ = try member.readLine()
            members.append(member)
        }
        self.members = members
        publisher = try LineClient(port: port)
        _ = try publisher.readLine()
        try publisher.send("roomChange \(room)")
        _ = try publisher.readLine()
        let publisherBox = UncheckedBox(publisher)
        group.enter()
        Thread.detachNewThread { [self] in
            defer { group.leave() }
            var n = 0
            var messageCount: Int64 = 1
            while !stopping.load(ordering: .relaxed) {
                n += 1
                do {
                    try publisherBox.value.send("say \(room) m\(n)")
                    messageCount += 1
                    let reply = try JSON.parse(try publisherBox.value.readLine(timeout: 10))
                    guard reply["status"]?.stringValue == "OK", reply["messageCount"]?.intValue == messageCount else {
                        problems.withLock { $0.append("publisher: \(reply)") }
                        return
                    }
                    said.store(n, ordering: .relaxed)
                } catch {
                    problems.withLock { $0.append("publisher: \(error)") }
                    return
                }
                usleep(intervalMicros)
            }
        }
    }

    /// Stops the publisher, then reads each member's chat: problems found.
    func stop() -> [String] {
        stopping.store(true, ordering: .relaxed)
        group.wait()
        let total = said.load(ordering: .relaxed)
        var found = problems.withLock { $0 }
        for (index, member) in members.enumerated() {
            var heard: [Int] = []
            while heard.last ?? 0 < total {
                guard let line = try? member.readLine(timeout: 3), let message = try? JSON.parse(line) else { break }
                if message["status"]?.stringValue == "Bye!" { found.append("member \(index): goodbye"); break }
                guard message["context"]?.stringValue == "user", let text = message["message"]?.stringValue,
                      text.hasPrefix("m"), let n = Int(text.dropFirst()) else {
                    found.append("member \(index): unexpected \(line)")
                    continue
                }
                heard.append(n)
            }
            if heard != Array(1...max(1, total)).prefix(total).map({ $0 }) {
                let missing = Set(1...max(1, total)).subtracting(heard).sorted()
                let doubled = heard.count - Set(heard).count
                found.append("member \(index): heard \(heard.count) of \(total); missing \(missing.prefix(10)), \(doubled) doubled, in order: \(heard == heard.sorted())")
            }
        }
        return found
    }

    var messagesSaid: Int { said.load(ordering: .relaxed) }

    func close() {
        for member in members { member.close() }
        publisher.close()
    }
}

struct UncheckedBox<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}

func nowMicros() -> Int {
    var spec = timespec()
    clock_gettime(CLOCK_MONOTONIC, &spec)
    return spec.tv_sec * 1_000_000 + spec.tv_nsec / 1_000
}
