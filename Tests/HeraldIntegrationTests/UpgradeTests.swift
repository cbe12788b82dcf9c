import Foundation
import Glibc
import Synchronization
import Testing
@testable import HeraldTestSupport

/// The binary upgrade (`herald upgrade`, issue 10): a new supervisor started from the
/// binary on disk inherits the listening sockets, takes over the pidfile and the control
/// socket, and the old one hands its workers over and exits 0; `--wait` for reload, scale
/// and upgrade. Each test runs its own redis-server and cluster.
@Suite("Upgrade: new supervisor from the binary on disk; --wait", .serialized)
struct UpgradeTests {
    /// The pid the pidfile holds.
    static func pidfilePID(_ server: HeraldProcess) -> Int64? {
        guard let text = try? String(contentsOfFile: ClusterTests.pidfile(server), encoding: .utf8) else { return nil }
        return Int64(text.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// Stops the supervisor that took over (it is no child of the test: `herald stop`,
    /// then SIGKILL to what is left).
    static func stopSuccessor(_ server: HeraldProcess, pid: Int64) {
        _ = try? ClusterTests.cli(server, ["stop"], timeout: 30)
        if kill(pid_t(pid), 0) == 0 && !isZombie(pid_t(pid)) { kill(pid_t(pid), SIGKILL) }
    }

    static func isZombie(_ pid: pid_t) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let paren = stat.lastIndex(of: ")") else { return false }
        return stat[stat.index(paren, offsetBy: 2)] == "Z"
    }

    static func serverIDs(_ status: JSON) -> Set<String> {
        Set((status["workers"]?.arrayValue ?? []).compactMap { $0["serverId"]?.stringValue })
    }

    @Test("upgrade --wait with idle, busy and chatting clients: new supervisor and workers, every connection handed over (no goodbye, session kept), no refused connect, no lost reply, chat exact")
    func upgradeUnderLoad() throws {
        ClusterTests.raiseFileLimit()
        let redis = try RedisServer()
        let server = try HeraldProcess.start(ClusterTests.options(workers: 2, redis: redis))
        var successor: Int64?
        defer {
            if let successor { Self.stopSuccessor(server, pid: successor) }
            _ = server.stop()
            server.removeDirectory()
        }
        let before = try ClusterTests.waitForStatus(server, timeout: 10, "two running workers") {
            ClusterTests.runningWorkerPIDs($0).count == 2
        }
        let oldPID = try #require(before["supervisor"]?["pid"]?.intValue)
        let oldIDs = Self.serverIDs(before)
        let port = server.port
        // Idle clients with params in a room, busy clients, chat: the handoff moves them all.
        let idle = try IdleClients(port: port, count: 50)
        defer { idle.close() }
        let busy = try BusyClients(port: port, count: 5)
        defer { _ = busy.stop() }
        let chat = try ChatLoad(port: port, members: 10)
        defer { chat.close() }

        let stop = Atomic<Bool>(false)
        let refused = Atomic<Int>(0)
        let connects = Atomic<Int>(0)
        let problems = Mutex<[String]>([])
        let group = DispatchGroup()
        // A connector loop: every connect must be accepted and welcomed.
        group.enter()
        Thread.detachNewThread {
            defer { group.leave() }
            while !stop.load(ordering: .relaxed) {
                do {
                    let client = try LineClient(port: port, connectTimeout: 2)
                    _ = try client.readLine(timeout: 5)
                    client.close()
                    connects.add(1, ordering: .relaxed)
                } catch {
                    refused.add(1, ordering: .relaxed)
                    problems.withLock { $0.append("connect: \(error)") }
                }
                usleep(2_000)
            }
        }
        usleep(300_000)
        let upgrade = try ClusterTests.cli(server, ["upgrade", "--wait"], timeout: 60)
        if let pid = Self.pidfilePID(server), pid != oldPID { successor = pid }
        #expect(upgrade.status == .exited(0), "upgrade --wait: \(upgrade.stdout) \(upgrade.stderr)")
        #expect(upgrade.stdout.contains("new supervisor"), "the result says who serves: \(upgrade.stdout)")
        usleep(300_000)
        stop.store(true, ordering: .relaxed)
        group.wait()

        // The old supervisor exited once its workers had. (Not reaped yet: reaping the test's
        // child kills what is left in its process group, and the new supervisor is in it.)
        let exitDeadline = Deadline(10)
        while server.process.isRunning && !exitDeadline.passed { usleep(20_000) }
        #expect(!server.process.isRunning, "the old supervisor (pid \(oldPID)) is gone")
        let newPID = try #require(successor, "the pidfile holds a new pid")
        let after = try ClusterTests.waitForStatus(server, timeout: 10, "two running workers of the new supervisor") {
            ClusterTests.runningWorkerPIDs($0).count == 2 && $0["workers"]?.arrayValue?.count == 2
        }
        #expect(after["supervisor"]?["pid"]?.intValue == newPID, "status answers from the new supervisor: \(after)")
        #expect(after["supervisor"]?["upgradedFrom"]?.intValue == oldPID)
        let newIDs = Self.serverIDs(after)
        #expect(newIDs.isDisjoint(with: oldIDs), "new workers, new server ids: before \(oldIDs), after \(newIDs)")
        #expect(refused.load(ordering: .relaxed) == 0, "refused connects: \(problems.withLock { $0.prefix(5) })")
        let busyProblems = busy.stop()
        #expect(busyProblems.isEmpty, "busy clients: \(busyProblems.prefix(5))")
        #expect(busy.lost == 0 && busy.goodbyes.load(ordering: .relaxed) == 0,
                "\(busy.lost) lost, \(busy.goodbyes.load(ordering: .relaxed)) goodbyes")
        #expect(busy.replies.load(ordering: .relaxed) > 20, "the busy clients ran: \(busy.replies.load(ordering: .relaxed)) replies")
        let chatProblems = chat.stop()
        #expect(chatProblems.isEmpty, "chat: \(chatProblems.prefix(5))")
        #expect(connects.load(ordering: .relaxed) > 20, "the connector ran: \(connects.load(ordering: .relaxed))")
        // A new connection is served by a new worker.
        let fresh = try LineClient(port: port)
        defer { fresh.close() }
        _ = try fresh.readLine()
        #expect(newIDs.contains(try ClusterTests.workerID(fresh, messageCount: 1)))
        // No goodbye: each idle client kept its session (id, address, connectedAt, params,
        // rooms) and gets the next messageCount, from a new worker.
        let idleProblems = idle.check()
        #expect(idleProblems.isEmpty, "idle clients: \(idleProblems.prefix(5))")
        let idleIDs = try idle.serverIDs()
        #expect(idleIDs.isSubset(of: newIDs), "idle clients served by the new workers: \(idleIDs) (new \(newIDs))")
        Self.stopSuccessor(server, pid: newPID)
        successor = nil
        #expect(server.stop().0 == .exited(0), "the old supervisor exited 0")
    }

    @Test("upgrade to a binary that does not start: the old cluster keeps serving, --wait says why")
    func upgradeToBrokenBinaryFails() throws {
        let redis = try RedisServer()
        let binDir = try makeTempDir("herald-upgrade-bin")
        defer { try? FileManager.default.removeItem(at: binDir) }
        let copy = binDir.appendingPathComponent("herald").path
        try FileManager.default.copyItem(atPath: heraldBinaryPath(), toPath: copy)
        var options = ClusterTests.options(workers: 1, redis: redis)
        options.binary = copy
        let server = try HeraldProcess.start(options)
        defer {
            _ = server.stop()
            server.removeDirectory()
        }
        let before = try ClusterTests.waitForStatus(server, timeout: 10, "a running worker") {
            ClusterTests.runningWorkerPIDs($0).count == 1
        }
        // The binary on disk is replaced (renamed over: the running one keeps its file)
        // by one that fails at once.
        let script = binDir.appendingPathComponent("herald.new").path
        try "#!/bin/sh\necho 'broken build' >&2\nexit 1\n".write(toFile: script, atomically: false, encoding: .utf8)
        #expect(chmod(script, 0o755) == 0)
        #expect(rename(script, copy) == 0)

        let upgrade = try ClusterTests.cli(server, ["upgrade", "--wait"], timeout: 60)
        #expect(upgrade.status == .exited(1), "upgrade --wait fails: \(upgrade.stdout) \(upgrade.stderr)")
        #expect(upgrade.stderr.contains("the upgrade failed") && upgrade.stderr.contains("exit 1"),
                "the reason: \(upgrade.stderr)")
        let after = try ClusterTests.status(server)
        #expect(after["supervisor"]?["pid"]?.intValue == before["supervisor"]?["pid"]?.intValue)
        #expect(ClusterTests.runningWorkerPIDs(after) == ClusterTests.runningWorkerPIDs(before), "the old workers keep serving")
        #expect(Self.pidfilePID(server) == before["supervisor"]?["pid"]?.intValue)
        try server.requireServing("after a failed upgrade")
        // A reload to the broken binary fails too, and --wait says so.
        let reload = try ClusterTests.cli(server, ["reload", "--wait"], timeout: 60)
        #expect(reload.status == .exited(1), "reload --wait fails: \(reload.stdout) \(reload.stderr)")
        #expect(reload.stderr.contains("the reload failed"), "the reason: \(reload.stderr)")
        try server.requireServing("after a failed reload")
        #expect(server.process.isRunning)
    }

    @Test("a daemon with a password in --redis upgrades: the new supervisor serves, shows no password, stops")
    func daemonUpgrades() throws {
        let password = HardeningOpsTests.randomPassword()
        let redis = try RedisServer(password: password)
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let env = ["HERALD_RUN_DIR": dir.path]
        let start = try HardeningOpsTests.run(try HardeningOpsTests.startArguments(workers: 2)
                                                + ["--daemon", "--redis", "redis://:\(password)@127.0.0.1:\(redis.port)"],
                                              environment: env, timeout: 20)
        try #require(start.status == .exited(0), "\(start.status) \(start.stderr)")
        defer { _ = try? HardeningOpsTests.run(["stop"], environment: env, timeout: 30) }
        let before = try HardeningOpsTests.waitForStatus(env, timeout: 10, "two running workers") {
            HardeningOpsTests.runningWorkers($0).count == 2
        }
        let oldPID = try #require(before["supervisor"]?["pid"]?.intValue)
        let upgrade = try HardeningOpsTests.run(["upgrade", "--wait"], environment: env, timeout: 60)
        #expect(upgrade.status == .exited(0), "\(upgrade.stdout) \(upgrade.stderr)")
        let after = try HardeningOpsTests.waitForStatus(env, timeout: 10, "two running workers of the new supervisor") {
            HardeningOpsTests.runningWorkers($0).count == 2 && $0["supervisor"]?["pid"]?.intValue != oldPID
        }
        let newPID = try #require(after["supervisor"]?["pid"]?.intValue)
        #expect(kill(pid_t(oldPID), 0) != 0 || Self.isZombie(pid_t(oldPID)), "the old daemon has exited")
        let shown = HardeningOpsTests.commandLines(containing: password)
        #expect(shown.isEmpty, "the password is on these command lines: \(shown)")
        let stop = try HardeningOpsTests.run(["stop"], environment: env, timeout: 30)
        #expect(stop.status == .exited(0), "\(stop.stderr)")
        #expect(kill(pid_t(newPID), 0) != 0 || Self.isZombie(pid_t(newPID)), "the new daemon has stopped")
    }

    @Test("under NOTIFY_SOCKET: RELOADING=1 from the old supervisor, then MAINPID=<new> and READY=1 from the new")
    func upgradeNotifiesSystemd() throws {
        let redis = try RedisServer()
        let name = "herald-upgrade-notify-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let receiver = try NotifyReceiver(abstractName: name)
        defer { receiver.close() }
        var options = ClusterTests.options(workers: 1, redis: redis)
        options.environment["NOTIFY_SOCKET"] = "@" + name
        let server = try HeraldProcess.start(options)
        var successor: Int64?
        defer {
            if let successor { Self.stopSuccessor(server, pid: successor) }
            _ = server.stop()
            server.removeDirectory()
        }
        try LogsAndSystemdTests.eventually(10, "READY=1") { receiver.messages.count >= 1 }
        let upgrade = try ClusterTests.cli(server, ["upgrade", "--wait"], timeout: 60)
        successor = Self.pidfilePID(server)
        #expect(upgrade.status == .exited(0), "\(upgrade.stderr)")
        let newPID = try #require(successor)
        try LogsAndSystemdTests.eventually(10, "the new supervisor's READY=1") { receiver.messages.count >= 3 }
        let texts = receiver.messages.map(\.text)
        #expect(texts[1].hasPrefix("RELOADING=1\n"), "\(texts)")
        #expect(texts[2].hasPrefix("MAINPID=\(newPID)\nREADY=1\n"), "\(texts)")
        usleep(300_000)
        #expect(receiver.messages.count == 3, "the old supervisor said nothing more (no STOPPING=1): \(receiver.messages.map(\.text))")
        // The new supervisor passes NOTIFY_SOCKET to no worker.
        Self.stopSuccessor(server, pid: newPID)
        successor = nil
        #expect(receiver.messages.last?.text.hasPrefix("STOPPING=1") == true, "the new one reports its stop")
    }

    @Test("reload --wait and scale --wait answer once the old workers have exited")
    func waitForReloadAndScale() throws {
        try ClusterTests.withCluster(workers: 2) { server, _ in
            let before = Set(ClusterTests.runningWorkerPIDs(try ClusterTests.waitForStatus(server, timeout: 10, "two running workers") {
                ClusterTests.runningWorkerPIDs($0).count == 2
            }))
            let reload = try ClusterTests.cli(server, ["reload", "--wait"], timeout: 60)
            #expect(reload.status == .exited(0), "reload --wait: \(reload.stderr)")
            #expect(reload.stdout.contains("2 old workers replaced"), "\(reload.stdout)")
            // No waiting here: the command only returned once it was all done.
            var status = try ClusterTests.status(server)
            let workers = status["workers"]?.arrayValue ?? []
            #expect(workers.count == 2 && workers.allSatisfy { $0["state"]?.stringValue == "running" }, "\(status)")
            #expect(Set(ClusterTests.runningWorkerPIDs(status)).isDisjoint(with: before))

            let up = try ClusterTests.cli(server, ["scale", "3", "--wait"], timeout: 60)
            #expect(up.status == .exited(0), "scale 3 --wait: \(up.stderr)")
            status = try ClusterTests.status(server)
            #expect(ClusterTests.runningWorkerPIDs(status).count == 3, "\(status)")
            let down = try ClusterTests.cli(server, ["scale", "1", "--wait", "--timeout", "30"], timeout: 60)
            #expect(down.status == .exited(0), "scale 1 --wait: \(down.stderr)")
            status = try ClusterTests.status(server)
            #expect(status["workers"]?.arrayValue?.count == 1, "the removed workers have exited: \(status)")

            let bad = try ClusterTests.cli(server, ["reload", "--timeout", "5"])
            #expect(bad.status == .exited(2), "--timeout without --wait: \(bad.stderr)")
            try server.requireServing("after the waits")
        }
    }
}
