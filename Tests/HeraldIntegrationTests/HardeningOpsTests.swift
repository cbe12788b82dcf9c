import Foundation
import Glibc
import Testing
@testable import HeraldTestSupport

/// Issue 9, items 7, 8, 9 and 12, against the real binary: settings that would crash
/// the start, a run directory another user prepared, the Redis password on command
/// lines and in errors, a worker that cannot be started.
@Suite("Hardening: settings, run directory, secrets, spawn failures")
struct HardeningOpsTests {
    // MARK: Helpers

    /// Runs `herald arguments` to completion with `environment` on top of the test
    /// process's (less its HERALD_* variables; no HERALD_RUN_DIR unless given).
    static func run(_ arguments: [String], environment: [String: String], binary: String = heraldBinaryPath(),
                    timeout: Double = 10) throws -> (status: HeraldTestSupport.ExitStatus, stdout: String, stderr: String) {
        let dir = try makeTempDir("herald-ops-run")
        defer { try? FileManager.default.removeItem(at: dir) }
        var env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("HERALD_") }
        env.merge(environment) { $1 }
        let out = dir.appendingPathComponent("stdout").path
        let err = dir.appendingPathComponent("stderr").path
        let child = try ChildProcess(path: binary, arguments: arguments, environment: env, directory: dir,
                                     stdoutPath: out, stderrPath: err)
        guard let status = child.waitForExit(timeout: timeout) else {
            _ = child.stop(grace: 2)
            throw HarnessError.timeout("`herald \(arguments.joined(separator: " "))` did not finish within \(timeout) s; stderr: \((try? String(contentsOfFile: err, encoding: .utf8)) ?? "")")
        }
        return (status, (try? String(contentsOfFile: out, encoding: .utf8)) ?? "",
                (try? String(contentsOfFile: err, encoding: .utf8)) ?? "")
    }

    /// `herald start` arguments for one worker on a free port (not started).
    static func startArguments(workers: Int = 1) throws -> [String] {
        ["start", "--port", String(try FreePort.pick()), "--bind", "127.0.0.1", "--workers", String(workers)]
    }

    /// Every process whose command line contains `needle`, as "pid: command line".
    static func commandLines(containing needle: String) -> [String] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.filter { $0.allSatisfy(\.isNumber) }.compactMap { pid in
            guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return nil }
            let text = String(decoding: data.map { $0 == 0 ? 0x20 : $0 }, as: UTF8.self)
            return text.contains(needle) ? "\(pid): \(text)" : nil
        }
    }


    static func mode(_ path: String) -> (mode: mode_t, uid: uid_t, isDirectory: Bool)? {
        var info = stat()
        guard lstat(path, &info) == 0 else { return nil }
        return (info.st_mode & 0o7777, info.st_uid, info.st_mode & S_IFMT == S_IFDIR)
    }

    static func supervisorStatus(_ environment: [String: String]) throws -> JSON {
        let result = try run(["status", "--json"], environment: environment)
        guard result.status == .exited(0) else {
            throw HarnessError.mismatch("herald status failed (\(result.status)): \(result.stderr)")
        }
        return try JSON.parse(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    static func runningWorkers(_ status: JSON) -> [Int64] {
        (status["workers"]?.arrayValue ?? []).filter { $0["state"]?.stringValue == "running" }.compactMap { $0["pid"]?.intValue }
    }

    /// Waits (polling `herald status`) until `condition` holds.
    static func waitForStatus(_ environment: [String: String], timeout: Double, _ what: String,
                              _ condition: (JSON) -> Bool) throws -> JSON {
        let deadline = Deadline(timeout)
        var last = JSON.null
        while !deadline.passed {
            if let status = try? supervisorStatus(environment) {
                last = status
                if condition(status) { return status }
            }
            usleep(100_000)
        }
        throw HarnessError.timeout("\(what) within \(timeout) s; last status: \(last)")
    }

    /// A connection's `cacheTest` goes through Redis: it fails if the worker could not log in.
    static func requireRedisWorks(port: UInt16) throws {
        let client = try LineClient(port: port)
        defer { client.close() }
        _ = try client.readLine()
        try client.send(#"{"action":"cacheTest","params":{"key":"k","value":"v"}}"#)
        let reply = try JSON.parse(try client.readLine(timeout: 5))
        guard reply["cacheTestResults"]?["saveResp"] == .bool(true) else {
            throw HarnessError.mismatch("cacheTest through Redis failed: \(reply)")
        }
    }

    // MARK: Item 9: settings

    @Test("a bad number anywhere (flag, --set, environment, file) exits 2 with a message naming it, never a crash",
          arguments: [
              (["--set", "maxLineBytes=9223372036854775807"], [:], "maxLineBytes"),
              (["--set", "maxOutputBytes=1e400"], [:], "maxOutputBytes"),
              (["--set", "keepAliveInterval=NaN"], [:], "keepAliveInterval"),
              (["--set", "maxConnections=-9223372036854775809"], [:], "maxConnections"),
              (["--set", "simultaneousActions=1.5"], [:], "simultaneousActions"),
              (["--set", "redisDatabase=99999999999999999999"], [:], "redisDatabase"),
              (["--port", "99999999999999999999"], [:], "port"),
              (["--workers", "-1"], [:], "workers"),
              (["--tls-port", "inf"], [:], "tlsPort"),
              ([], ["HERALD_MAX_STICKY_PARAMS": "9223372036854775807"], "HERALD_MAX_STICKY_PARAMS"),
              ([], ["HERALD_PENDING_SHUTDOWN_WAIT_LIMIT": "-1"], "HERALD_PENDING_SHUTDOWN_WAIT_LIMIT"),
              (["--config", "/dev/zero"], [:], "/dev/zero"),
          ] as [([String], [String: String], String)])
    func badSettingsExit2(extra: [String], environment: [String: String], named: String) throws {
        let runDir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: runDir) }
        var env = environment
        env["HERALD_RUN_DIR"] = runDir.path
        let result = try Self.run(try Self.startArguments() + extra, environment: env, timeout: 5)
        #expect(result.status == .exited(2), "\(extra) \(environment): \(result.status); stderr: \(result.stderr)")
        #expect(result.stderr.contains(named), "the message names \(named): \(result.stderr)")
        #expect(!result.stderr.contains("Fatal error"), "\(result.stderr)")
    }

    @Test("config files that are empty, not UTF-8, nested 100,000 deep or hold a huge number: exit 2 naming the file")
    func badConfigFilesExit2() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let files: [(String, [UInt8])] = [
            ("empty.json", []),
            ("binary.json", [0xff, 0xfe, 0x00, 0x7b]),
            ("deep.json", Array(repeating: UInt8(ascii: "["), count: 100_000)),
            ("huge.json", Array(#"{"maxLineBytes": 9223372036854775807}"#.utf8)),
        ]
        for (name, bytes) in files {
            let path = dir.appendingPathComponent(name).path
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            let result = try Self.run(try Self.startArguments() + ["--config", path], environment: ["HERALD_RUN_DIR": dir.path], timeout: 5)
            #expect(result.status == .exited(2), "\(name): \(result.status); stderr: \(result.stderr)")
            #expect(result.stderr.contains(path), "\(name): \(result.stderr)")
        }
    }

    // MARK: Item 7: the run directory

    @Test("a run directory with mode 0777: start, status and stop refuse it, naming the path and the fix")
    func runDirectoryWithOpenModeIsRefused() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        #expect(chmod(dir.path, 0o777) == 0)
        let env = ["HERALD_RUN_DIR": dir.path]
        let start = try Self.run(try Self.startArguments(), environment: env, timeout: 5)
        #expect(start.status == .exited(1), "start: \(start.status) \(start.stderr)")
        #expect(start.stderr.contains(dir.path) && start.stderr.contains("chmod 700"), "start: \(start.stderr)")
        #expect(access(dir.appendingPathComponent("herald.pid").path, F_OK) != 0, "no pidfile written")
        for command in ["status", "stop"] {
            let result = try Self.run([command], environment: env, timeout: 5)
            #expect(result.status == .exited(1), "\(command): \(result.status) \(result.stderr)")
            #expect(result.stderr.contains(dir.path) && result.stderr.contains("0777"), "\(command): \(result.stderr)")
        }
    }

    @Test("a run directory owned by another user (uid 65534) or a symbolic link is refused")
    func foreignOrLinkedRunDirectoryIsRefused() throws {
        try #require(geteuid() == 0, "needs root to chown")
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let foreign = dir.appendingPathComponent("foreign").path
        #expect(mkdir(foreign, 0o700) == 0 && chown(foreign, 65_534, 65_534) == 0)
        let real = dir.appendingPathComponent("real").path
        let link = dir.appendingPathComponent("link").path
        #expect(mkdir(real, 0o700) == 0 && symlink(real, link) == 0)
        for (path, why) in [(foreign, "owned by uid 65534"), (link, "symbolic link")] {
            let start = try Self.run(try Self.startArguments(), environment: ["HERALD_RUN_DIR": path], timeout: 5)
            #expect(start.status == .exited(1), "\(path): \(start.status) \(start.stderr)")
            #expect(start.stderr.contains(path) && start.stderr.contains(why), "\(start.stderr)")
            let stop = try Self.run(["stop"], environment: ["HERALD_RUN_DIR": path], timeout: 5)
            #expect(stop.status == .exited(1) && stop.stderr.contains(why), "stop: \(stop.status) \(stop.stderr)")
        }
        #expect(access(real + "/herald.pid", F_OK) != 0, "nothing written through the link")
    }

    @Test("a planted herald.log symbolic link: start --daemon and --log refuse it, the target stays untouched")
    func plantedLogLinkIsRefused() throws {
        let dir = try makeTempDir()
        let elsewhere = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir); try? FileManager.default.removeItem(at: elsewhere) }
        let target = elsewhere.appendingPathComponent("victim").path
        #expect(FileManager.default.createFile(atPath: target, contents: Data()))
        let log = dir.appendingPathComponent("herald.log").path
        #expect(symlink(target, log) == 0)
        let env = ["HERALD_RUN_DIR": dir.path]
        let daemon = try Self.run(try Self.startArguments() + ["--daemon"], environment: env, timeout: 10)
        if daemon.status == .exited(0) { _ = try? Self.run(["stop"], environment: env, timeout: 20) }  // old behaviour: clean up
        #expect(daemon.status == .exited(1), "start --daemon: \(daemon.status) \(daemon.stderr)")
        #expect(daemon.stderr.contains(log) && daemon.stderr.contains("symbolic link"), "\(daemon.stderr)")
        let foreground = try Self.run(try Self.startArguments() + ["--log", log], environment: env, timeout: 5)
        #expect(foreground.status == .exited(2), "start --log: \(foreground.status) \(foreground.stderr)")
        #expect(foreground.stderr.contains("symbolic link"), "\(foreground.stderr)")
        #expect((try? Data(contentsOf: URL(fileURLWithPath: target)))?.isEmpty == true, "nothing was written to the link's target")
    }

    /// A unix socket some other process listens on, planted as the control socket.
    final class FakeControlSocket {
        let fd: Int32

        init(path: String) throws {
            fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            withUnsafeMutableBytes(of: &address.sun_path) { raw in
                let bytes = Array(path.utf8)
                for (index, byte) in bytes.enumerated() where index < raw.count - 1 { raw[index] = byte }
            }
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
            guard bound == 0, listen(fd, 8) == 0 else { throw HarnessError.system("bind \(path)", errno) }
        }

        /// What the connections made to it so far sent.
        func received() -> String {
            var text = ""
            while true {
                let client = accept(fd, nil, nil)
                if client < 0 { return text }
                var buffer = [UInt8](repeating: 0, count: 256)
                let n = recv(client, &buffer, buffer.count, Int32(MSG_DONTWAIT))
                if n > 0 { text += String(decoding: buffer[0..<n], as: UTF8.self) }
                close(client)
            }
        }

        deinit { close(fd) }
    }

    @Test("a planted control socket (another user's, or not the pidfile's process): stop and status refuse it and send it nothing")
    func plantedControlSocketIsRefused() throws {
        try #require(geteuid() == 0, "needs root to chown")
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let socketPath = dir.appendingPathComponent("herald.sock").path
        let pidfile = dir.appendingPathComponent("herald.pid").path
        let fake = try FakeControlSocket(path: socketPath)
        let env = ["HERALD_RUN_DIR": dir.path]
        // 1. The socket belongs to another user; the pidfile names a live process.
        try "\(getpid())\n".write(toFile: pidfile, atomically: true, encoding: .utf8)
        #expect(chown(socketPath, 65_534, 65_534) == 0)
        for command in ["stop", "status"] {
            let result = try Self.run([command], environment: env, timeout: 5)
            #expect(result.status == .exited(1), "\(command): \(result.status) \(result.stderr)")
            #expect(result.stderr.contains(socketPath) && result.stderr.contains("owned by uid 65534"), "\(command): \(result.stderr)")
        }
        // 2. The socket is this user's, but the process listening is not the pidfile's.
        #expect(chown(socketPath, 0, 0) == 0)
        try "1\n".write(toFile: pidfile, atomically: true, encoding: .utf8)
        let stop = try Self.run(["stop"], environment: env, timeout: 5)
        #expect(stop.status == .exited(1), "stop: \(stop.status) \(stop.stderr)")
        #expect(stop.stderr.contains("not by the supervisor in the pidfile"), "\(stop.stderr)")
        // 3. The pidfile itself planted by another user.
        #expect(chown(pidfile, 65_534, 65_534) == 0)
        let status = try Self.run(["status"], environment: env, timeout: 5)
        #expect(status.status == .exited(1) && status.stderr.contains("owned by uid 65534"), "status: \(status.status) \(status.stderr)")
        #expect(!fake.received().contains("stop"), "the planted socket got no command")
    }

    @Test("a run directory that does not exist yet is created 0700 and works for start, status and stop")
    func freshRunDirectoryWorks() throws {
        let base = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: base) }
        let runDir = base.appendingPathComponent("a/run").path
        var options = HeraldOptions()
        options.environment = ["HERALD_RUN_DIR": runDir]
        try withHerald(options) { server in
            let made = try #require(Self.mode(runDir))
            #expect(made.isDirectory && made.mode == 0o700 && made.uid == geteuid(), "\(made)")
            let socket = try #require(Self.mode(runDir + "/herald.sock"))
            #expect(socket.mode & 0o077 == 0, "the control socket is the owner's only: \(String(socket.mode, radix: 8))")
            let status = try Self.supervisorStatus(["HERALD_RUN_DIR": runDir])
            #expect(status["supervisor"]?["pid"]?.intValue == Int64(server.process.pid))
            try server.requireServing("with a fresh run directory")
        }
    }

    // MARK: Item 8: the Redis password

    static func randomPassword() -> String { "pw-\(UInt64.random(in: 1...UInt64.max))-\(getpid())" }

    @Test("a password in --redis: no herald process shows it (ps), the log never has it, the cluster uses Redis")
    func passwordInURLIsOnNoCommandLine() throws {
        let password = Self.randomPassword()
        let redis = try RedisServer(password: password)
        var options = HeraldOptions()
        options.workers = 2
        options.extraArguments = ["--redis", "redis://:\(password)@127.0.0.1:\(redis.port)"]
        try withHerald(options) { server in
            let env = ["HERALD_RUN_DIR": server.directory.path]
            _ = try Self.waitForStatus(env, timeout: 10, "two running workers") { Self.runningWorkers($0).count == 2 }
            try Self.requireRedisWorks(port: server.port)
            let shown = Self.commandLines(containing: password)
            #expect(shown.isEmpty, "the password is on these command lines: \(shown)")
            let workers = Self.commandLines(containing: " worker --port \(server.port) ")
            #expect(workers.count == 2 && workers.allSatisfy { $0.contains("redis://:***@127.0.0.1") }, "\(workers)")
            let status = try Self.run(["status"], environment: env)
            #expect(!status.stdout.contains(password) && status.stdout.contains(":***@"), "\(status.stdout)")
            #expect(!server.stderrText().contains(password), "the log has the password")
        }
    }

    @Test("redisPasswordFile: read at start and at reload, on no command line; a missing file exits 2 naming it")
    func passwordFile() throws {
        let password = Self.randomPassword()
        let redis = try RedisServer(password: password)
        let secrets = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: secrets) }
        let file = secrets.appendingPathComponent("redis-password").path
        try "\(password)\n".write(toFile: file, atomically: true, encoding: .utf8)
        var options = HeraldOptions([("redisPasswordFile", file)])
        options.workers = 1
        options.extraArguments = ["--redis", redis.url]
        try withHerald(options) { server in
            let env = ["HERALD_RUN_DIR": server.directory.path]
            let before = Self.runningWorkers(try Self.waitForStatus(env, timeout: 10, "a running worker") { Self.runningWorkers($0).count == 1 })
            try Self.requireRedisWorks(port: server.port)
            #expect(Self.commandLines(containing: password).isEmpty)
            // A new password: Redis first, then the file, then a reload.
            let renewed = Self.randomPassword()
            #expect(try redis.command("CONFIG SET requirepass \(renewed)") == "+OK")
            try "\(renewed)\n".write(toFile: file, atomically: true, encoding: .utf8)
            let reload = try Self.run(["reload"], environment: env)
            #expect(reload.status == .exited(0), "\(reload.stderr)")
            _ = try Self.waitForStatus(env, timeout: 10, "a new worker") { status in
                let pids = Self.runningWorkers(status)
                return pids.count == 1 && pids != before && status["supervisor"]?["reloading"] == .bool(false)
            }
            try Self.requireRedisWorks(port: server.port)
            // An unreadable file refuses the reload and the worker keeps serving.
            unlink(file)
            let refused = try Self.run(["reload"], environment: env)
            #expect(refused.status == .exited(1) && refused.stderr.contains(file), "\(refused.status) \(refused.stderr)")
            try server.requireServing("after a refused reload")
        }
        let missing = try Self.run(try Self.startArguments() + ["--redis", redis.url, "--set", "redisPasswordFile=\(file)"],
                                   environment: ["HERALD_RUN_DIR": secrets.path], timeout: 5)
        #expect(missing.status == .exited(2), "\(missing.status) \(missing.stderr)")
        #expect(missing.stderr.contains("redisPasswordFile \(file)") && missing.stderr.contains("No such file"), "\(missing.stderr)")
    }

    @Test("start --daemon with a password in --redis: the daemon and its workers show none")
    func daemonPasswordIsOnNoCommandLine() throws {
        let password = Self.randomPassword()
        let redis = try RedisServer(password: password)
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let env = ["HERALD_RUN_DIR": dir.path]
        let start = try Self.run(try Self.startArguments() + ["--daemon", "--redis", "redis://:\(password)@127.0.0.1:\(redis.port)"],
                                 environment: env, timeout: 20)
        try #require(start.status == .exited(0), "\(start.status) \(start.stderr)")
        defer { _ = try? Self.run(["stop"], environment: env, timeout: 30) }
        _ = try Self.waitForStatus(env, timeout: 10, "a running worker") { Self.runningWorkers($0).count == 1 }
        let shown = Self.commandLines(containing: password)
        #expect(shown.isEmpty, "the password is on these command lines: \(shown)")
        let log = (try? String(contentsOfFile: dir.appendingPathComponent("herald.log").path, encoding: .utf8)) ?? ""
        #expect(log.contains("event=server.start") && !log.contains(password), "\(log)")
    }

    @Test("a malformed --redis URL with a password: exit 2, the message shows it as ***")
    func malformedURLHidesThePassword() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        for url in ["redis://:hunter2-secret@127.0.0.1:notaport", "redis://user:hunter2-secret@", "unix://relative?password=hunter2-secret",
                    "http://:hunter2-secret@host"] {
            let result = try Self.run(try Self.startArguments() + ["--redis", url], environment: ["HERALD_RUN_DIR": dir.path], timeout: 5)
            #expect(result.status == .exited(2), "\(url): \(result.status) \(result.stderr)")
            #expect(!result.stderr.contains("hunter2") && result.stderr.contains("***"), "\(url): \(result.stderr)")
        }
        let stray = try Self.run(try Self.startArguments() + ["redis://:hunter2-secret@h:1"], environment: ["HERALD_RUN_DIR": dir.path], timeout: 5)
        #expect(stray.status == .exited(2) && !stray.stderr.contains("hunter2"), "\(stray.stderr)")
    }

    // MARK: Item 12: a worker that cannot be started

    @Test("the binary on disk cannot be executed: a reload fails and keeps the worker; a crashed slot is retried with backoff until it can")
    func unstartableWorkerIsRetried() throws {
        let redis = try RedisServer()
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        // The supervisor starts workers from its own binary on disk: a copy of ours.
        let binary = dir.appendingPathComponent("herald").path
        try FileManager.default.copyItem(atPath: heraldBinaryPath(), toPath: binary)
        let port = try FreePort.pick()
        var env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("HERALD_") }
        env["HERALD_RUN_DIR"] = dir.path
        let stderrPath = dir.appendingPathComponent("stderr").path
        let supervisor = try ChildProcess(path: binary, arguments: ["start", "--port", String(port), "--bind", "127.0.0.1",
                                                                    "--workers", "1", "--redis", redis.url],
                                          environment: env, directory: dir,
                                          stdoutPath: dir.appendingPathComponent("stdout").path, stderrPath: stderrPath)
        defer { _ = supervisor.stop(grace: 10) }
        func log() -> String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }
        func count(_ event: String) -> Int { log().components(separatedBy: "event=\(event) ").count - 1 }
        let runEnv = ["HERALD_RUN_DIR": dir.path]
        let first = Self.runningWorkers(try Self.waitForStatus(runEnv, timeout: 10, "a running worker") { Self.runningWorkers($0).count == 1 })

        #expect(chmod(binary, 0) == 0)
        // A reload cannot start a new worker: it fails, and the old one keeps serving.
        #expect(try Self.run(["reload"], environment: runEnv).status == .exited(0))
        let deadline = Deadline(5)
        while !deadline.passed && !log().contains("event=cluster.reload.failed") { usleep(50_000) }
        #expect(log().contains("event=cluster.reload.failed"), "\(log())")
        #expect(!log().contains("event=cluster.reload.done"), "a reload that replaced nothing is not done")
        #expect(Self.runningWorkers(try Self.supervisorStatus(runEnv)) == first)

        // The worker crashes while the binary cannot be executed: retried, backing off.
        kill(pid_t(first[0]), SIGKILL)
        usleep(1_200_000)
        let failures = count("worker.spawn.failed")
        #expect(chmod(binary, 0o755) == 0)
        #expect(failures >= 2 && failures <= 10, "\(failures) failed starts in 1.2 s: retried, with backoff (not in a busy loop)")
        #expect(log().contains("event=worker.restart.backoff"))
        let after = try Self.waitForStatus(runEnv, timeout: 8, "a replacement worker") { status in
            let pids = Self.runningWorkers(status)
            return pids.count == 1 && pids != first
        }
        #expect(Self.runningWorkers(after).count == 1)
        let client = try LineClient(port: port)
        defer { client.close() }
        _ = try client.readLine()
        #expect(supervisor.isRunning, "the supervisor kept running")
    }
}
