import Glibc
import HeraldClient
import HeraldProtocol
@testable import class HeraldTestSupport.ChildProcess
@testable import enum HeraldTestSupport.ExitStatus
import Testing

/// Collects events from a client's stream in the background.
final class EventLog: Sendable {
    private let events = Locked<[HeraldEvent]>([])
    private let task: Task<Void, Never>

    init(_ client: HeraldClient) {
        let events = self.events
        let stream = client.events
        task = Task {
            for await event in stream { events.withLock { $0.append(event) } }
        }
    }

    var all: [HeraldEvent] { events.withLock { $0 } }

    /// Waits until `predicate` holds for some event (polling), up to `timeout`.
    func wait(for timeout: Duration = .seconds(10), _ predicate: (HeraldEvent) -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if all.contains(where: predicate) { return true }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return all.contains(where: predicate)
    }

    deinit { task.cancel() }
}

@Suite("HeraldClient against the real herald binary")
struct ClientTests {
    @Test("welcome, details, an action with params, an error reply as a typed error")
    func basics() async throws {
        try await withServer { server in
            let client = try await HeraldClient.connect(host: "127.0.0.1", port: server.port)
            #expect(client.welcome.message == "Hello! Welcome to the actionhero api")
            #expect(client.welcome.room == "defaultRoom")
            let details = try await client.details()
            #expect(details.remoteIP == "127.0.0.1")
            #expect(details.room == "defaultRoom")
            #expect(details.id.count == 36)

            let reply = try await client.action("cacheTest", params: ["key": "k", "value": "v"], timeout: .seconds(5))
            #expect(reply["cacheTestResults"]?.objectValue?["saveResp"] == .bool(true))
            #expect(reply["cacheTestResults"]?.objectValue?["loadResp"]?.objectValue?["value"] == .string("v"))

            do throws(HeraldClientError) {
                _ = try await client.action("cacheTest", params: ["key": "k"])
                Issue.record("an error reply must throw")
            } catch .actionFailed(let message, let failed) {
                #expect(message == "Error: value is a required parameter for this action")
                #expect(failed["context"] == .string("response"))
            }
            do throws(HeraldClientError) {
                _ = try await client.action("noSuchAction")
                Issue.record("an unknown action must throw")
            } catch .actionFailed(let message, _) {
                #expect(message == "Error: noSuchAction is not a known action.")
            }
            await #expect(throws: HeraldClientError.invalidRequest("a line break in the request")) {
                _ = try await client.send("randomNumber\nrandomNumber")
            }
            #expect(await client.disconnect() == "quit requested")
            await #expect(throws: HeraldClientError.notConnected) { _ = try await client.action("randomNumber") }
        }
    }

    @Test("sticky params: add, view, views, delete; plain action lines use them")
    func stickyParams() async throws {
        try await withServer { server in
            let client = try await HeraldClient.connect(port: server.port)
            try await client.paramAdd("key", "myKey")
            try await client.paramAdd("value", "my value = with spaces")
            #expect(try await client.paramView("value") == .string("my value = with spaces"))
            #expect(try await client.paramView("missing") == nil)
            let reply = try await client.action("cacheTest")
            #expect(reply["cacheTestResults"]?.objectValue?["loadResp"]?.objectValue?["value"] == .string("my value = with spaces"))
            #expect(try await client.paramsView() == ["key": "myKey", "value": "my value = with spaces", "action": "cacheTest"])
            try await client.paramDelete("key")
            #expect(try await client.paramsView() == ["value": "my value = with spaces", "action": "cacheTest"])
            #expect(client.stickyParams == ["value": "my value = with spaces", "action": "cacheTest"])
            await client.disconnect()
        }
    }

    @Test("a fast reply reaches its caller before a slow one sent earlier")
    func outOfOrderReplies() async throws {
        try await withServer { server in
            let client = try await HeraldClient.connect(port: server.port)
            let order = Locked<[String]>([])
            async let slow: JSONObject = {
                // Long enough that the fast request overtakes it even on a loaded machine.
                let r = try await client.action("sleepTest", params: ["sleepDuration": 1500])
                order.withLock { $0.append("sleep") }
                return r
            }()
            try await Task.sleep(for: .milliseconds(50))
            async let fast: JSONObject = {
                let r = try await client.action("randomNumber")
                order.withLock { $0.append("random") }
                return r
            }()
            let (s, f) = try await (slow, fast)
            #expect(order.withLock { $0 } == ["random", "sleep"])
            #expect(s["sleepDuration"] == .number(1500))
            #expect(s["messageCount"] == .number(1))
            #expect(f["randomNumber"]?.numberValue != nil)
            #expect(f["messageCount"] == .number(2))
            await client.disconnect()
        }
    }

    @Test("many requests in flight from many tasks each get their own reply")
    func manyInFlight() async throws {
        try await withServer { server in
            let client = try await HeraldClient.connect(port: server.port)
            for i in 0..<50 { try await client.paramAdd("p\(i)", "v\(i)") }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for i in 0..<50 {
                    group.addTask {
                        let value = try await client.paramView("p\(i)")
                        #expect(value == .string("v\(i)"))
                    }
                }
                for i in 0..<4 {
                    group.addTask {
                        let r = try await client.action("sleepTest", params: ["sleepDuration": .number(Double(20 * i))])
                        #expect(r["sleepDuration"] == .number(Double(20 * i)))
                    }
                }
                try await group.waitForAll()
            }
            await client.disconnect()
        }
    }

    @Test("a request times out, its late reply is dropped, and later requests still match")
    func timeouts() async throws {
        try await withServer { server in
            let client = try await HeraldClient.connect(port: server.port)
            let log = EventLog(client)
            do throws(HeraldClientError) {
                // Margins wide enough for a loaded machine: the reply comes 2.5 s late.
                _ = try await client.action("sleepTest", params: ["sleepDuration": 3000], timeout: .milliseconds(500))
                Issue.record("must time out")
            } catch .timedOut(let request, let count, _) {
                #expect(request == "sleepTest")
                #expect(count == 1)
            }
            #expect(await log.wait { if case .timeout(_, 1) = $0 { true } else { false } })
            try await Task.sleep(for: .milliseconds(3000))
            let reply = try await client.action("randomNumber")
            #expect(reply["messageCount"] == .number(2))
            await client.disconnect()
        }
    }

    @Test("chat: a member's say reaches the other member's message stream")
    func chat() async throws {
        try await withServer { server in
            let alice = try await HeraldClient.connect(port: server.port)
            let bob = try await HeraldClient.connect(port: server.port)
            try await alice.roomAdd("lobby")
            try await bob.roomAdd("lobby")
            #expect(try await bob.roomView("lobby").membersCount == 2)
            await #expect(throws: HeraldClientError.self) { try await bob.roomAdd("lobby") }
            let aliceID = try await alice.details().id
            try await alice.say(room: "lobby", message: "hooray!")
            try await alice.say(room: "lobby", message: "second")
            var iterator = bob.messages.makeAsyncIterator()
            let first = await iterator.next()
            let second = await iterator.next()
            #expect(first?.message == "hooray!")
            #expect(first?.room == "lobby")
            #expect(first?.from == aliceID)
            #expect(second?.message == "second")
            await #expect(throws: HeraldClientError.self) { try await alice.say(room: "elsewhere", message: "x") }
            try await alice.roomLeave("lobby")
            #expect(try await bob.roomView("lobby").membersCount == 1)
            await alice.disconnect()
            await bob.disconnect()
        }
    }

    @Test("SIGTERM: pending replies arrive, then the goodbye, then the end; pending and new requests fail")
    func serverGoodbye() async throws {
        try await withServer { server in
            let client = try await HeraldClient.connect(port: server.port)
            let log = EventLog(client)
            async let slow = client.action("sleepTest", params: ["sleepDuration": 300])
            try await Task.sleep(for: .milliseconds(50))
            server.process.signal(SIGTERM)
            let reply = try await slow
            #expect(reply["sleepDuration"] == .number(300))
            #expect(await log.wait { if case .goodbye("server shutdown") = $0 { true } else { false } })
            #expect(await log.wait { if case .end("server shutdown", false) = $0 { true } else { false } })
            await #expect(throws: HeraldClientError.notConnected) { _ = try await client.action("randomNumber") }
            let process = server.process
            #expect(try await offPool { process.waitForExit(timeout: 10)?.exitCode } == 0)
        }
    }

    @Test("reconnect after a server restart on the same port restores rooms and params")
    func reconnect() async throws {
        try await withServer { first in
        let options = HeraldClientOptions(reconnect: ReconnectPolicy(initialDelay: .milliseconds(50), maxDelay: .milliseconds(400)))
        let client = try await HeraldClient.connect(port: first.port, options: options)
        let log = EventLog(client)
        try await client.roomAdd("ops")
        try await client.roomLeave("defaultRoom")
        try await client.paramAdd("key", "k1")
        await first.stopAndWait()
        #expect(await log.wait { if case .end("server shutdown", true) = $0 { true } else { false } })
        #expect(await log.wait { if case .reconnecting = $0 { true } else { false } })
        try await withServer(port: first.port) { second in
            #expect(await log.wait { if case .reconnected = $0 { true } else { false } })
            let details = try await client.details()
            #expect(details.rooms == ["ops"])
            #expect(details.params["key"] == .string("k1"))
            #expect(client.rooms == ["ops"])
            let reply = try await client.action("randomNumber")
            #expect(reply["randomNumber"] != nil)
            await client.disconnect()
        }
        }
    }

    @Test("connecting to a port nobody listens on fails with connectFailed")
    func refused() async throws {
        let port = try freePort()
        await #expect(throws: HeraldClientError.self) {
            _ = try await HeraldClient.connect(port: port, options: HeraldClientOptions(connectTimeout: .seconds(2)))
        }
    }
}
