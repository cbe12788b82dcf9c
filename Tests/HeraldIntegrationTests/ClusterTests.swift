import Foundation
import Glibc
import Synchronization
import Testing
@testable import HeraldTestSupport

/// The supervisor (issue 4): several workers sharing one listening socket, crash
/// replacement, rolling reload under load, scale, stop. Each test runs its own
/// redis-server (workers share rooms and the cache through it) and its own cluster.
@Suite("Cluster: supervisor and workers", .serialized)
struct ClusterTests {
    /// Starts a cluster of `workers` workers on a private Redis.
    static func withCluster(workers: Int, configFile: String? = nil,
                            _ body: (HeraldProcess, RedisServer) throws -> Void) throws {
        let redis = try RedisServer()
        try withHerald(options(workers: workers, configFile: configFile, redis: redis)) { server in try body(server, redis) }
    }

    /// A cluster's options: `workers` workers on `redis`.
    static func options(workers: Int, configFile: String? = nil, redis: RedisServer, hostName: String? = nil) -> HeraldOptions {
        var options = HeraldOptions()
        options.workers = workers
        options.configFile = configFile
        options.extraArguments = ["--redis", redis.url]
        options.hostName = hostName
        return options
    }

    static func pidfile(_ server: HeraldProcess) -> String { server.directory.appendingPathComponent("herald.pid").path }

    /// `herald <command> --pidfile …` against the test's cluster.
    static func cli(_ server: HeraldProcess, _ arguments: [String], timeout: Double = 30) throws -> (status: HeraldTestSupport.ExitStatus, stdout: String, stderr: String) {
        try runHerald(arguments + ["--pidfile", pidfile(server)], timeout: timeout)
    }

    /// The supervisor's status reply.
    static func status(_ server: HeraldProcess) throws -> JSON {
        let result = try cli(server, ["status", "--json"])
        guard result.status == .exited(0) else {
            throw HarnessError.mismatch("herald status failed (\(result.status)): \(result.stderr)")
        }
        return try JSON.parse(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    static func runningWorkerPIDs(_ status: JSON) -> [Int64] {
        (status["workers"]?.arrayValue ?? []).filter { $0["state"]?.stringValue == "running" }.compactMap { $0["pid"]?.intValue }
    }

    /// Waits until `condition` holds for the status (checked every 100 ms).
    static func waitForStatus(_ server: HeraldProcess, timeout: Double, _ what: String,
                              _ condition: (JSON) -> Bool) throws -> JSON {
        let deadline = Deadline(timeout)
        var last = JSON.null
        while !deadline.passed {
            last = try status(server)
            if condition(last) { return last }
            usleep(100_000)
        }
        throw HarnessError.timeout("\(what) within \(timeout) s; last status: \(last)")
    }

    /// The server id of the worker serving `client` (through the `status` action).
    static func workerID(_ client: LineClient, messageCount: Int) throws -> String {
        try client.send("status")
        let reply = try JSON.parse(try client.readLine())
        guard let id = reply["id"]?.stringValue, reply["messageCount"]?.intValue == Int64(messageCount) else {
            throw HarnessError.mismatch("unexpected status reply: \(reply)")
        }
        return id
    }

    static func raiseFileLimit() {
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        limit.rlim_cur = limit.rlim_max
        setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    }

    @Test("1,000 connections spread over 2 workers: none holds more than 57.5% (+4.7 σ of the kernel's hash)")
    func connectionsSpreadEvenly() throws {
        Self.raiseFileLimit()
        try Self.withCluster(workers: 2) { server, _ in
            var counts: [String: Int] = [:]
            var clients: [LineClient] = []
            defer { clients.forEach { $0.close() } }
            for _ in 0..<1_000 {
                let (client, _) = try server.connectWelcomed()
                clients.append(client)
                counts[try Self.workerID(client, messageCount: 1), default: 0] += 1
            }
            #expect(counts.count == 2, "every worker serves: \(counts)")
            // SO_REUSEPORT hashes each connection's addresses and ports: a fair coin per
            // connection, so 500 ± 15.8 (one standard deviation). 550 (+3.2 σ) failed about
            // one run in 600 (CI saw 552); 575 is +4.7 σ (one run in ~500,000) and still
            // fails a 60/40 spread or a worker left out.
            let busiest = counts.values.max() ?? 0
            #expect(busiest <= 575, "no worker above 57.5%: \(counts)")
        }
    }

    @Test("each worker has its own server id, and status lists them")
    func statusListsWorkers() throws {
        try Self.withCluster(workers: 2) { server, _ in
            let status = try Self.waitForStatus(server, timeout: 10, "two running workers") { Self.runningWorkerPIDs($0).count == 2 }
            let ids = Set((status["workers"]?.arrayValue ?? []).compactMap { $0["serverId"]?.stringValue })
            #expect(ids.count == 2)
            #expect(status["supervisor"]?["pid"]?.intValue != nil)
            let table = try Self.cli(server, ["status"])
            #expect(table.status == .exited(0))
            #expect(table.stdout.contains("supervisor pid"))
            #expect(table.stdout.contains("CONNECTIONS"))
        }
    }

    @Test("kill -9 of a worker under traffic: replaced within a second, the other worker's clients never notice")
    func killedWorkerIsReplaced() throws {
        try Self.withCluster(workers: 2) { server, _ in
            let before = try Self.waitForStatus(server, timeout: 10, "two running workers") { Self.runningWorkerPIDs($0).count == 2 }
            let workers = before["workers"]?.arrayValue ?? []
            guard let victim = workers.first, let victimPID = victim["pid"]?.intValue,
                  let victimID = victim["serverId"]?.stringValue else { throw HarnessError.mismatch("no worker: \(before)") }
            // Clients on the surviving worker keep a conversation going through the kill.
            var survivors: [LineClient] = []
            var count = 0
            while survivors.count < 5 && count < 200 {
                count += 1
                let (client, _) = try server.connectWelcomed()
                if try Self.workerID(client, messageCount: 1) != victimID { survivors.append(client) } else { client.close() }
            }
            #expect(survivors.count == 5)
            kill(pid_t(victimPID), SIGKILL)
            let killedAt = Deadline.now()
            for (index, client) in survivors.enumerated() {
                try client.send("randomNumber")
                let reply = try JSON.parse(try client.readLine())
                #expect(reply["messageCount"]?.intValue == 2, "survivor \(index) answered: \(reply)")
            }
            let after = try Self.waitForStatus(server, timeout: 5, "a replacement worker") { status in
                let pids = Self.runningWorkerPIDs(status)
                return pids.count == 2 && !pids.contains(victimPID)
            }
            let elapsed = Deadline.now() - killedAt
            #expect(elapsed < 2.5, "replaced after \(elapsed) s (the status poll adds up to a few hundred ms)")
            #expect(server.stderrText().contains("unexpected=true"))
            _ = after
            try server.requireServing("after a worker was killed")
        }
    }

    @Test("a crashed worker's room members are gone from roomView at once, not after the heartbeat expiry")
    func crashedWorkersMembersAreEvicted() throws {
        try Self.withCluster(workers: 2) { server, _ in
            _ = try Self.waitForStatus(server, timeout: 10, "two running workers") { Self.runningWorkerPIDs($0).count == 2 }
            // One client on each worker, both in room "evict".
            var byWorker: [String: (LineClient, String)] = [:]
            var attempts = 0
            while byWorker.count < 2 && attempts < 200 {
                attempts += 1
                let (client, id) = try server.connectWithId()
                let worker = try Self.workerID(client, messageCount: 2)
                if byWorker[worker] == nil { byWorker[worker] = (client, id) } else { client.close() }
            }
            #expect(byWorker.count == 2)
            let entries = Array(byWorker)
            let (victimServer, (victimClient, victimID)) = entries[0]
            let (_, (watcher, watcherID)) = entries[1]
            try victimClient.send("roomAdd evict")
            _ = try victimClient.readLine()
            try watcher.send("roomAdd evict")
            _ = try watcher.readLine()
            try watcher.send("roomView evict")
            let before = try JSON.parse(try watcher.readLine())
            #expect(before["data"]?["members"]?[victimID] != nil, "both are members first: \(before)")
            let status = try Self.status(server)
            guard let victimPID = (status["workers"]?.arrayValue ?? []).first(where: { $0["serverId"]?.stringValue == victimServer })?["pid"]?.intValue else {
                throw HarnessError.mismatch("no pid for \(victimServer) in \(status)")
            }
            kill(pid_t(victimPID), SIGKILL)
            let deadline = Deadline(3)
            var listed = true
            while listed && !deadline.passed {
                usleep(100_000)
                try watcher.send("roomView evict")
                let view = try JSON.parse(try watcher.readLine())
                guard view["data"]?["members"]?[watcherID] != nil else {
                    throw HarnessError.mismatch("roomView does not list the watcher itself: \(view)")
                }
                listed = view["data"]?["members"]?[victimID] != nil
            }
            #expect(!listed, "the killed worker's member left roomView within 3 s")
        }
    }

    @Test("two hosts named web1 and web10, two workers each: every member hears every say once, byte-exact; nobody hears itself")
    func twoNamedHostsOfTwoWorkers() throws {
        let redis = try RedisServer()
        defer { redis.stop() }
        try withHerald(Self.options(workers: 2, redis: redis, hostName: "web1")) { web1 in
            try withHerald(Self.options(workers: 2, redis: redis, hostName: "web10")) { web10 in
                // Six clients per host (over both of its workers), all in the default room.
                var clients: [(LineClient, String, String)] = []  // client, connection id, server id
                for server in [web1, web10] {
                    for _ in 0..<6 {
                        let (client, id) = try server.connectWithId()
                        clients.append((client, id, try Self.workerID(client, messageCount: 2)))
                    }
                }
                let servers = Set(clients.map(\.2))
                #expect(servers.filter { $0.hasPrefix("web1-") }.count >= 1 && servers.filter { $0.hasPrefix("web10-") }.count >= 1,
                        "server ids: \(servers)")
                // Let every worker's join of the default room be visible on the bus.
                try RedisBusTests.eventually(5, "12 members in defaultRoom") {
                    try clients[0].0.send("roomView")
                    return try clients[0].0.readJSON()["data"]?["membersCount"]?.intValue == 12
                }
                for (speaker, speakerID, _) in clients {
                    try speaker.send(#"say défaut "\#(speakerID)" {}"#)
                    try speaker.expect(#"{"status":"OK","context":"response","data":null,"messageCount":<NUM>}"#)
                    for (hearer, hearerID, _) in clients where hearerID != speakerID {
                        let line = try hearer.readLine()
                        let expected = #"{"message":"défaut \"\#(speakerID)\" {}","room":"defaultRoom","from":"\#(speakerID)","context":"user","sentAt":"#
                        #expect(line.hasPrefix(expected) && line.hasSuffix("}"), "heard \(line)")
                    }
                }
                for (client, _, _) in clients { try client.expectNoData(for: 0.05) }
            }
        }
    }

    @Test("rolling reload under continuous load: no refused connect, no lost reply")
    func reloadUnderLoad() throws {
        try Self.withCluster(workers: 2) { server, _ in
            let before = Set(Self.runningWorkerPIDs(try Self.waitForStatus(server, timeout: 10, "two running workers") {
                Self.runningWorkerPIDs($0).count == 2
            }))
            let stop = Atomic<Bool>(false)
            let replies = Atomic<Int>(0)
            let refused = Atomic<Int>(0)
            let lost = Atomic<Int>(0)
            let goodbyes = Atomic<Int>(0)
            let problems = Mutex<[String]>([])
            let port = server.port
            let threads = 6
            let group = DispatchGroup()
            for thread in 0..<threads {
                group.enter()
                Thread.detachNewThread {
                    defer { group.leave() }
                    var requestsOnConnection = 0
                    var client: LineClient?
                    var messageCount = 0
                    while !stop.load(ordering: .relaxed) {
                        if client == nil {
                            do {
                                let fresh = try LineClient(port: port)
                                _ = try fresh.readLine()  // welcome
                                client = fresh
                                messageCount = 0
                                requestsOnConnection = 0
                            } catch {
                                refused.add(1, ordering: .relaxed)
                                problems.withLock { $0.append("thread \(thread): connect: \(error)") }
                                usleep(10_000)
                                continue
                            }
                        }
                        guard let current = client else { continue }
                        do {
                            try current.send("randomNumber")
                            messageCount += 1
                            let line = try current.readLine()
                            if line.contains(#""reason":"server shutdown""#) {
                                // The worker is draining: this request was sent after the
                                // goodbye; reconnect and send it again.
                                goodbyes.add(1, ordering: .relaxed)
                                current.close()
                                client = nil
                                continue
                            }
                            if line.contains(#""randomNumber":"#) && line.contains(#""messageCount":\#(messageCount)"#) {
                                replies.add(1, ordering: .relaxed)
                            } else {
                                lost.add(1, ordering: .relaxed)
                                problems.withLock { $0.append("thread \(thread): unexpected reply \(line)") }
                            }
                            requestsOnConnection += 1
                            if requestsOnConnection >= 50 {
                                // Keep connecting throughout, so a refused connect would show.
                                current.close()
                                client = nil
                            }
                        } catch {
                            lost.add(1, ordering: .relaxed)
                            problems.withLock { $0.append("thread \(thread): request \(messageCount): \(error)") }
                            current.close()
                            client = nil
                        }
                    }
                    client?.close()
                }
            }
            usleep(500_000)
            for round in 1...2 {
                let reload = try Self.cli(server, ["reload"])
                #expect(reload.status == .exited(0), "reload \(round): \(reload.stderr)")
                _ = try Self.waitForStatus(server, timeout: 20, "reload \(round) to finish") { status in
                    status["supervisor"]?["reloading"]?.boolValue == false && Self.runningWorkerPIDs(status).count == 2
                        && (status["workers"]?.arrayValue ?? []).allSatisfy { $0["state"]?.stringValue == "running" }
                }
                usleep(300_000)
            }
            stop.store(true, ordering: .relaxed)
            group.wait()
            let after = Set(Self.runningWorkerPIDs(try Self.status(server)))
            #expect(after.isDisjoint(with: before), "every worker was replaced: before \(before), after \(after)")
            #expect(refused.load(ordering: .relaxed) == 0, "refused connects: \(problems.withLock { $0.prefix(5) })")
            #expect(lost.load(ordering: .relaxed) == 0, "lost replies: \(problems.withLock { $0.prefix(5) })")
            #expect(replies.load(ordering: .relaxed) > 500, "the load ran: \(replies.load(ordering: .relaxed)) replies")
            // Plain TCP connections move to the new workers (HandoffTests): nobody gets a goodbye.
            #expect(goodbyes.load(ordering: .relaxed) == 0, "the reload handed every connection over")
        }
    }

    @Test("scale up and down, by command and by SIGTTIN/SIGTTOU")
    func scaling() throws {
        try Self.withCluster(workers: 1) { server, _ in
            _ = try Self.waitForStatus(server, timeout: 10, "one worker") { Self.runningWorkerPIDs($0).count == 1 }
            #expect(try Self.cli(server, ["scale", "3"]).status == .exited(0))
            _ = try Self.waitForStatus(server, timeout: 10, "three workers") { Self.runningWorkerPIDs($0).count == 3 }
            #expect(try Self.cli(server, ["scale", "1"]).status == .exited(0))
            _ = try Self.waitForStatus(server, timeout: 15, "one worker again") {
                Self.runningWorkerPIDs($0).count == 1 && ($0["workers"]?.arrayValue ?? []).count == 1
            }
            let supervisor = pid_t(try Self.status(server)["supervisor"]?["pid"]?.intValue ?? 0)
            kill(supervisor, SIGTTIN)
            _ = try Self.waitForStatus(server, timeout: 10, "two workers after SIGTTIN") { Self.runningWorkerPIDs($0).count == 2 }
            kill(supervisor, SIGTTOU)
            _ = try Self.waitForStatus(server, timeout: 15, "one worker after SIGTTOU") {
                Self.runningWorkerPIDs($0).count == 1 && ($0["workers"]?.arrayValue ?? []).count == 1
            }
            let bad = try Self.cli(server, ["scale", "zero"])
            #expect(bad.status == .exited(2))
            try server.requireServing("after scaling")
        }
    }

    @Test("herald stop: clients get the goodbye, every process exits, the pidfile is removed")
    func stopLeavesNothing() throws {
        let redis = try RedisServer()
        let server = try HeraldProcess.start(Self.options(workers: 2, redis: redis))
        defer { server.stop(); server.removeDirectory() }
        let status = try Self.waitForStatus(server, timeout: 10, "two workers") { Self.runningWorkerPIDs($0).count == 2 }
        let pids = Self.runningWorkerPIDs(status).map { pid_t($0) } + [server.process.pid]
        let (client, _) = try server.connectWelcomed()
        let stop = try Self.cli(server, ["stop"])
        #expect(stop.status == .exited(0), "herald stop: \(stop.stderr)")
        #expect(try client.readLine() == #"{"status":"Bye!","context":"api","reason":"server shutdown"}"#)
        try client.expectClosed()
        #expect(server.waitForExit(timeout: 5) == .exited(0))
        for pid in pids { #expect(kill(pid, 0) != 0, "process \(pid) is gone") }
        #expect(access(Self.pidfile(server), F_OK) != 0, "pidfile removed")
    }

    @Test("a killed supervisor leaves no worker behind")
    func noOrphans() throws {
        let redis = try RedisServer()
        let server = try HeraldProcess.start(Self.options(workers: 2, redis: redis))
        defer { server.stop(); server.removeDirectory() }
        let pids = Self.runningWorkerPIDs(try Self.waitForStatus(server, timeout: 10, "two workers") {
            Self.runningWorkerPIDs($0).count == 2
        }).map { pid_t($0) }
        kill(server.process.pid, SIGKILL)
        _ = server.waitForExit(timeout: 5)
        let deadline = Deadline(10)
        while !deadline.passed && pids.contains(where: { kill($0, 0) == 0 }) { usleep(50_000) }
        for pid in pids { #expect(kill(pid, 0) != 0, "worker \(pid) exited with its supervisor") }
    }

    @Test("a reload with a broken configuration is refused and the workers keep serving")
    func reloadRefusesBrokenConfiguration() throws {
        try Self.withCluster(workers: 1, configFile: #"{"maxLineBytes": 65536}"#) { server, _ in
            let before = Self.runningWorkerPIDs(try Self.waitForStatus(server, timeout: 10, "one worker") {
                Self.runningWorkerPIDs($0).count == 1
            })
            try #"{"maxLineBytes": "#.write(to: server.directory.appendingPathComponent("herald.json"), atomically: true, encoding: .utf8)
            let reload = try Self.cli(server, ["reload"])
            #expect(reload.status == .exited(1))
            #expect(reload.stderr.contains("herald.json"), "the reason names the file: \(reload.stderr)")
            #expect(Self.runningWorkerPIDs(try Self.status(server)) == before)
            try server.requireServing("after a refused reload")
        }
    }

    @Test("a worker that crashes over and over: backoff, then the supervisor stops with cluster.crashloop")
    func crashLoopStopsTheCluster() throws {
        let redis = try RedisServer()
        let server = try HeraldProcess.start(Self.options(workers: 1, configFile: #"{"maxLineBytes": 65536}"#, redis: redis))
        defer { server.stop(); server.removeDirectory() }
        let pid = try Self.waitForStatus(server, timeout: 10, "one worker") { Self.runningWorkerPIDs($0).count == 1 }
        // Break the configuration the workers read, then kill the worker: every
        // replacement now exits at start.
        try #"{"maxLineBytes": "#.write(to: server.directory.appendingPathComponent("herald.json"), atomically: true, encoding: .utf8)
        kill(pid_t(Self.runningWorkerPIDs(pid)[0]), SIGKILL)
        // 10 crashes: restarts after 0, 0.2, 0.4, 0.8, 1.6, 3.2, then 5 s each: about 21 s.
        let status = server.waitForExit(timeout: 40)
        #expect(status == .exited(1), "the supervisor gave up with exit status 1")
        let log = server.stderrText()
        #expect(log.contains("event=worker.restart.backoff"))
        #expect(log.contains("event=cluster.crashloop"))
        #expect(access(Self.pidfile(server), F_OK) != 0, "pidfile removed")
    }

    @Test("a second supervisor with the same pidfile refuses to start")
    func pidfileIsExclusive() throws {
        try Self.withCluster(workers: 1) { server, _ in
            let port = try FreePort.pick()
            let second = try Self.cli(server, ["start", "--workers", "1", "--port", String(port), "--bind", "127.0.0.1"], timeout: 10)
            #expect(second.status == .exited(1))
            #expect(second.stderr.contains("another herald supervisor"), "\(second.stderr)")
        }
    }
}
