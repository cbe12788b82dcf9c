import Foundation
import Glibc
import Testing
@testable import HeraldTestSupport

/// The connection handoff (issue 10): reload and scale-down pass every plain TCP
/// connection — socket and session — to the successor worker. Real binary, real Redis,
/// two workers; what the clients see is counted, nothing is re-sent.
@Suite("Handoff: reload and scale-down keep every connection", .serialized)
struct HandoffTests {
    typealias Cluster = ClusterTests

    static func handoffTotals(_ server: HeraldProcess) throws -> (handedOver: Int64, drained: Int64) {
        let status = try Cluster.status(server)
        let handoff = status["supervisor"]?["handoff"]
        return (handoff?["handedOver"]?.intValue ?? -1, handoff?["drained"]?.intValue ?? -1)
    }

    static func waitForWorkers(_ server: HeraldProcess, _ count: Int, replacing old: Set<Int64>, _ what: String) throws {
        _ = try Cluster.waitForStatus(server, timeout: 20, what) { status in
            let workers = status["workers"]?.arrayValue ?? []
            return status["supervisor"]?["reloading"]?.boolValue == false && workers.count == count
                && workers.allSatisfy { $0["state"]?.stringValue == "running" && !old.contains($0["pid"]?.intValue ?? 0) }
        }
    }

    @Test("reload: 200 idle clients with params in a room and 10 busy ones keep their sessions; no reply lost")
    func reloadIdleAndBusy() throws {
        Cluster.raiseFileLimit()
        try Cluster.withCluster(workers: 2) { server, _ in
            let started = try Cluster.waitForStatus(server, timeout: 10, "two workers") { Cluster.runningWorkerPIDs($0).count == 2 }
            let before = Set(Cluster.runningWorkerPIDs(started))
            let oldIDs = Set((started["workers"]?.arrayValue ?? []).compactMap { $0["serverId"]?.stringValue })
            let idle = try IdleClients(port: server.port, count: 200)
            defer { idle.close() }
            let busy = try BusyClients(port: server.port, count: 10)
            usleep(300_000)
            let reload = try Cluster.cli(server, ["reload"])
            #expect(reload.status == .exited(0), "reload: \(reload.stderr)")
            try Self.waitForWorkers(server, 2, replacing: before, "the reload to finish")
            usleep(300_000)
            let problems = busy.stop()
            #expect(problems.isEmpty, "busy clients: \(problems.prefix(5))")
            #expect(busy.lost == 0 && busy.goodbyes.load(ordering: .relaxed) == 0,
                    "\(busy.lost) lost, \(busy.goodbyes.load(ordering: .relaxed)) goodbyes")
            #expect(busy.replies.load(ordering: .relaxed) > 100, "the load ran")
            let idleProblems = idle.check()
            #expect(idleProblems.isEmpty, "idle clients: \(idleProblems.prefix(5))")
            let newIDs = try idle.serverIDs()
            #expect(newIDs.isDisjoint(with: oldIDs), "served by the new workers: \(newIDs) (old \(oldIDs))")
            let totals = try Self.handoffTotals(server)
            #expect(totals.handedOver == 210 && totals.drained == 0, "handoff counts \(totals)")
            print("reload handoff: busy clients' longest wait \(busy.longestWaitMicros.load(ordering: .relaxed) / 1_000) ms, \(busy.replies.load(ordering: .relaxed)) replies")
        }
    }

    @Test("scale 2 → 1: the removed worker's clients move to the one left, sessions and replies intact")
    func scaleDown() throws {
        Cluster.raiseFileLimit()
        try Cluster.withCluster(workers: 2) { server, _ in
            _ = try Cluster.waitForStatus(server, timeout: 10, "two workers") { Cluster.runningWorkerPIDs($0).count == 2 }
            let idle = try IdleClients(port: server.port, count: 100)
            defer { idle.close() }
            let busy = try BusyClients(port: server.port, count: 6)
            usleep(300_000)
            #expect(try Cluster.cli(server, ["scale", "1"]).status == .exited(0))
            try Self.waitForWorkers(server, 1, replacing: [], "one worker")
            usleep(300_000)
            let problems = busy.stop()
            #expect(problems.isEmpty && busy.lost == 0, "busy clients: \(busy.lost) lost; \(problems.prefix(5))")
            let idleProblems = idle.check()
            #expect(idleProblems.isEmpty, "idle clients: \(idleProblems.prefix(5))")
            #expect(try idle.serverIDs().count == 1, "every client on the one worker left")
            let totals = try Self.handoffTotals(server)
            #expect(totals.handedOver > 0 && totals.drained == 0, "handoff counts \(totals)")
        }
    }

    @Test("reload: chat members hear every message once and in order")
    func reloadChat() throws {
        try Cluster.withCluster(workers: 2) { server, _ in
            let before = Set(Cluster.runningWorkerPIDs(try Cluster.waitForStatus(server, timeout: 10, "two workers") {
                Cluster.runningWorkerPIDs($0).count == 2
            }))
            let chat = try ChatLoad(port: server.port, members: 20)
            defer { chat.close() }
            usleep(300_000)
            #expect(try Cluster.cli(server, ["reload"]).status == .exited(0))
            try Self.waitForWorkers(server, 2, replacing: before, "the reload to finish")
            usleep(300_000)
            let problems = chat.stop()
            #expect(problems.isEmpty, "chat: \(problems.prefix(5))")
            #expect(chat.messagesSaid > 50, "the publisher ran")
        }
    }

    @Test("scale 2 → 1: chat members hear every message once and in order, roomView keeps every member")
    func scaleDownChat() throws {
        try Cluster.withCluster(workers: 2) { server, _ in
            _ = try Cluster.waitForStatus(server, timeout: 10, "two workers") { Cluster.runningWorkerPIDs($0).count == 2 }
            let chat = try ChatLoad(port: server.port, members: 20)
            defer { chat.close() }
            let (viewer, _) = try server.connectWelcomed()
            /// The viewer is a member too (roomView needs it): chat lines come between replies.
            func reply(_ request: String) throws -> JSON {
                try viewer.send(request)
                while true {
                    let line = try JSON.parse(try viewer.readLine())
                    if line["context"]?.stringValue == "response" { return line }
                }
            }
            _ = try reply("roomAdd chatRoom")
            func members() throws -> Int64 { try reply("roomView chatRoom")["data"]?["membersCount"]?.intValue ?? -1 }
            #expect(try members() == 22)
            usleep(300_000)
            #expect(try Cluster.cli(server, ["scale", "1"]).status == .exited(0))
            var counts: [Int64] = []
            for _ in 0..<15 {
                counts.append(try members())
                usleep(50_000)
            }
            try Self.waitForWorkers(server, 1, replacing: [], "one worker")
            counts.append(try members())
            #expect(counts.allSatisfy { $0 == 22 }, "roomView member counts during the scale-down: \(counts)")
            usleep(300_000)
            let problems = chat.stop()
            #expect(problems.isEmpty, "chat: \(problems.prefix(5))\n\(server.stderrTail(30))")
        }
    }

    @Test("an action running at the reload moves after its reply; one still running at pendingShutdownWaitLimit gets the goodbye")
    func pendingActions() throws {
        let redis = try RedisServer()
        var options = Cluster.options(workers: 1, redis: redis)
        options.settings = [("pendingShutdownWaitLimit", "800")]
        try withHerald(options) { server in
            let before = Set(Cluster.runningWorkerPIDs(try Cluster.waitForStatus(server, timeout: 10, "one worker") {
                Cluster.runningWorkerPIDs($0).count == 1
            }))
            let (short, _) = try server.connectWelcomed()
            let (long, _) = try server.connectWelcomed()
            try short.send(#"{"action":"sleepTest","params":{"sleepDuration":300}}"#)
            try long.send(#"{"action":"sleepTest","params":{"sleepDuration":5000}}"#)
            usleep(50_000)
            #expect(try Cluster.cli(server, ["reload"]).status == .exited(0))
            let reply = try JSON.parse(try short.readLine())
            #expect(reply["messageCount"]?.intValue == 1 && reply["error"] == nil, "the running action replied: \(reply)")
            let goodbye = try long.readLine(timeout: 5)
            #expect(goodbye.contains("Bye!"), "the action still running at the limit: \(goodbye)")
            try Self.waitForWorkers(server, 1, replacing: before, "the reload to finish")
            try short.send("detailsView")
            let details = try JSON.parse(try short.readLine())
            #expect(details["messageCount"]?.intValue == 2, "the connection moved and goes on: \(details)")
            let totals = try Self.handoffTotals(server)
            #expect(totals.handedOver == 1 && totals.drained == 1, "handoff counts \(totals)")
            #expect(server.stderrText().contains("handoff.fallback"), "the fallback is logged")
        }
    }

    @Test("herald stop still says goodbye")
    func stopSaysGoodbye() throws {
        try Cluster.withCluster(workers: 2) { server, _ in
            let (client, _) = try server.connectWelcomed()
            server.signal(SIGTERM)
            let line = try client.readLine()
            #expect(line.contains("\"Bye!\""), "goodbye on stop: \(line)")
        }
    }
}
