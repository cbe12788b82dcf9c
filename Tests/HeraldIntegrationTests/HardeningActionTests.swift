import Foundation
import Glibc
import Testing
@testable import HeraldTestSupport

/// A test server's worker processes as the kernel sees them (/proc), never through the
/// server's own counters.
enum WorkerProbe {
    /// The herald workers (children named `herald`) of the server's supervisor.
    static func pids(of server: HeraldProcess) -> [pid_t] {
        let parent = server.process.pid
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { Int32($0) }.filter { pid in
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { return false }
            let name = stat[stat.index(after: stat.firstIndex(of: "(")!)..<close]
            let fields = stat[stat.index(close, offsetBy: 2)...].split(separator: " ")
            return name == "herald" && fields.count > 1 && Int32(fields[1]) == parent
        }.sorted()
    }

    /// The one worker of a single-worker server.
    static func worker(of server: HeraldProcess) throws -> pid_t {
        let deadline = Date().addingTimeInterval(5)
        while true {
            let found = pids(of: server)
            if found.count == 1 { return found[0] }
            if Date() > deadline { throw HarnessError.mismatch("expected one worker process, found \(found)") }
            usleep(50_000)
        }
    }

    /// Resident memory in bytes (VmRSS).
    static func rss(_ pid: pid_t) -> Int {
        let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            return (Int(line.split(separator: " ")[1]) ?? 0) * 1024
        }
        return 0
    }

    static func openFDs(_ pid: pid_t) -> Int {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []).count
    }

    /// Polls `condition` every 50 ms for up to `seconds`; true once it held.
    static func eventually(_ seconds: Double, _ condition: () throws -> Bool) rethrows -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        repeat {
            if try condition() { return true }
            usleep(50_000)
        } while Date() < deadline
        return try condition()
    }
}

/// Issue 9, item 4: actions end with their connection.
@Suite("Hardening: actions end with their connection")
struct HardeningActionTests {
    /// The worker's stats from the `status` action on a fresh connection (the status
    /// call itself is one of the pending actions).
    static func workerStats(_ server: HeraldProcess) throws -> (connections: Int, pending: Int) {
        let client = try LineClient(port: server.port)
        defer { client.close() }
        _ = try client.readLine()
        try client.send("status")
        let reply = try JSON.parse(try client.readLine())
        guard let worker = reply["stats"]?["worker"], let connections = worker["connections"]?.intValue,
              let pending = worker["pendingActions"]?.intValue else {
            throw HarnessError.mismatch("status has no stats.worker: \(reply)")
        }
        return (Int(connections), Int(pending))
    }

    @Test("20 connections × 5 day-long sleepTests with 1 MB params, then gone: memory and pendingActions return at once")
    func closedConnectionsCancelTheirActions() throws {
        // A clean close is a FIN, as a half-close is: its replies are waited for
        // halfClosedWaitLimit, shortened here; a reset cancels at once.
        try withHerald(HeraldOptions([("halfClosedWaitLimit", "300")])) { server in
            let worker = try WorkerProbe.worker(of: server)
            let baseline = WorkerProbe.rss(worker)
            let padding = String(repeating: "p", count: 1_000_000)
            let line = #"{"action":"sleepTest","params":{"sleepDuration":86400000,"padding":"\#(padding)"}}"#
            var clients: [LineClient] = []
            for _ in 0..<20 {
                let (client, _) = try server.connectWelcomed()
                for _ in 0..<5 { try client.send(line) }
                clients.append(client)
            }
            let started = try WorkerProbe.eventually(10) { try Self.workerStats(server).pending == 101 }
            let running = try Self.workerStats(server)
            try check(started, "the 100 sleepTests (and status) should be pending: \(running)")
            let loaded = WorkerProbe.rss(worker)
            try check(loaded - baseline > 60_000_000, "the params should take memory while the actions run: \(baseline) → \(loaded)")
            // Every way of leaving: a clean close, a reset, a half-close then close.
            for (i, client) in clients.enumerated() {
                switch i % 3 {
                case 0: client.close()
                case 1: client.resetClose()
                default:
                    client.shutdownWrite()
                    client.close()
                }
            }
            let settled = WorkerProbe.eventually(3) {
                (try? Self.workerStats(server)).map { $0 == (1, 1) } ?? false
            }
            let stats = try Self.workerStats(server)
            try check(settled, "pendingActions and connections must come back at once (only the status call left): \(stats)")
            let returned = WorkerProbe.eventually(3) { WorkerProbe.rss(worker) - baseline < 20_000_000 }
            try check(returned, "worker RSS must come back near its baseline: \(baseline) → \(loaded) → \(WorkerProbe.rss(worker))")
            try server.requireServing("after the cancelled actions")
        }
    }

    @Test("a goodbye (telnet break) cancels the connection's running actions")
    func goodbyeCancelsActions() throws {
        try withHerald { server in
            let (client, _) = try server.connectWelcomed()
            try client.send(#"{"action":"sleepTest","params":{"sleepDuration":86400000}}"#)
            try client.send(#"{"action":"cacheTest","params":{"key":"k","value":"v"}}"#)
            try expectLine(try client.readLine(), ActionTests.cacheResult + "2}")
            try check(try Self.workerStats(server).pending == 2, "the sleepTest (and status) should be pending")
            try client.sendRaw([0x04])  // Ctrl-D alone in a read: the goodbye
            try client.expect(#"{"status":"Bye!","context":"api","reason":"break-character"}"#)
            let ended = try WorkerProbe.eventually(2) { try Self.workerStats(server).pending == 1 }
            let stats = try Self.workerStats(server)
            try check(ended, "the sleepTest must end with the goodbye: \(stats)")
        }
    }

    @Test("a cacheTest waiting on a stalled Redis ends as soon as its client leaves")
    func redisWaitIsCancelled() throws {
        let redis = try RedisServer()
        defer { redis.stop() }
        var options = HeraldOptions()
        options.extraArguments = ["--redis", redis.url, "--set", "halfClosedWaitLimit=100"]
        try withHerald(options) { server in
            let (leaver, _) = try server.connectWelcomed()
            let (watcher, _) = try server.connectWelcomed()
            try watcher.roundTrip("roomView", #"{"status":"OK","context":"response","data":<ANY>,"messageCount":1}"#)
            // Redis holds every command for 3 s (the worker gives up on one after 2 s).
            let paused = try redis.command("CLIENT PAUSE 3000 ALL")
            try check(paused == "+OK", "CLIENT PAUSE: \(paused)")
            try leaver.send(#"{"action":"cacheTest","params":{"key":"k","value":"v"}}"#)
            usleep(200_000)
            leaver.close()
            usleep(500_000)  // halfClosedWaitLimit (100 ms), then cancelled
            // status reads this worker's counts at once, then waits for Redis's.
            try watcher.send("status")
            let reply = try JSON.parse(try watcher.readLine(timeout: 8))
            let pending = reply["stats"]?["worker"]?["pendingActions"]?.intValue
            try check(pending == 1, "the cacheTest must have ended with its connection (only status pending): \(reply)")
        }
    }

    @Test("quit waits for the pending actions' replies, then the goodbye")
    func quitStillDrains() throws {
        try withHerald { server in
            let (client, _) = try server.connectWelcomed()
            try client.send(#"{"action":"sleepTest","params":{"sleepDuration":300}}"#)
            try client.send("quit")
            try client.expect(ActionTests.sleepReply(300, 1))
            try client.expect(#"{"status":"Bye!","context":"api","reason":"quit requested"}"#)
        }
    }
}
