import Foundation
import Glibc

/// A real Sentinel setup on free loopback ports, private to one test: a master, a replica
/// of it (`--replicaof`), and three `redis-sentinel`s monitoring it as `mymaster` with
/// quorum 2, down-after 1000 ms and a short failover timeout. Config files live in a temp
/// dir; every process is stopped by its pid at the end.
final class RedisSentinelSetup {
    static let masterName = "mymaster"
    let directory: URL
    private(set) var masterPort: UInt16 = 0
    private(set) var replicaPort: UInt16 = 0
    private(set) var sentinelPorts: [UInt16] = []
    private var servers: [UInt16: ChildProcess] = [:]
    private var sentinels: [ChildProcess] = []
    /// `requirepass` of every node and sentinel (and `masterauth`, `sentinel auth-pass`).
    let password: String?

    /// `redis-sentinel://127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3#mymaster`
    var url: String {
        "redis-sentinel://" + (password.map { ":\($0)@" } ?? "") + sentinelPorts.map { "127.0.0.1:\($0)" }.joined(separator: ",") + "#\(Self.masterName)"
    }

    /// `redis-sentinel`, else nil (then `redis-server --sentinel` is used).
    static var sentinelBinary: String? {
        for candidate in ["/usr/bin/redis-sentinel", "/usr/local/bin/redis-sentinel"] where access(candidate, X_OK) == 0 {
            return candidate
        }
        return nil
    }

    init(downAfterMs: Int = 1_000, password: String? = nil) throws {
        self.password = password
        directory = try makeTempDir("herald-sentinel")
        do {
            masterPort = try startServer(arguments: [])
            replicaPort = try startServer(arguments: ["--replicaof", "127.0.0.1", String(masterPort)])
            for index in 0..<3 { sentinelPorts.append(try startSentinel(index, downAfterMs: downAfterMs)) }
            // Wait until the replica is in sync and the sentinels know each other and it.
            let deadline = Deadline(15)
            while !deadline.passed {
                let info = (try? Self.query(port: replicaPort, "INFO replication", password: password)).flatMap(\.first) ?? ""
                let known = sentinelPorts.allSatisfy { port in
                    let replicas = (try? Self.query(port: port, "SENTINEL replicas \(Self.masterName)", password: password)) ?? []
                    let others = (try? Self.query(port: port, "SENTINEL sentinels \(Self.masterName)", password: password)) ?? []
                    return replicas.contains(String(replicaPort)) && others.filter { $0 == "name" }.count >= 2
                }
                if info.contains("master_link_status:up") && known { return }
                usleep(100_000)
            }
            throw HarnessError.timeout("the sentinel setup did not settle within 15 s")
        } catch {
            stopAll()
            throw error
        }
    }

    private func startServer(arguments: [String]) throws -> UInt16 {
        guard let binary = RedisServer.binary else { throw HarnessError.startFailed("redis-server is not installed") }
        var lastError: Error?
        for _ in 0..<3 {
            let port = try FreePort.pick()
            let dir = directory.appendingPathComponent("redis-\(port)")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            var configFile: [String] = []
            if let password {  // (in a file: on no command line)
                let path = dir.appendingPathComponent("redis.conf")
                try "requirepass \(password)\nmasterauth \(password)\n".write(to: path, atomically: true, encoding: .utf8)
                configFile = [path.path]
            }
            let child = try ChildProcess(
                path: binary,
                arguments: configFile + ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                            "--daemonize", "no", "--dir", dir.path, "--protected-mode", "no"] + arguments,
                environment: ["PATH": "/usr/bin:/bin"], directory: dir,
                stdoutPath: dir.appendingPathComponent("redis.log").path, stderrPath: dir.appendingPathComponent("redis.err").path)
            if try waitForPing(port, child) {
                servers[port] = child
                return port
            }
            child.signal(SIGKILL)
            _ = child.waitForExit(timeout: 5)
            lastError = HarnessError.startFailed("redis-server on \(port) did not start")
        }
        throw lastError ?? HarnessError.startFailed("redis-server did not start")
    }

    private func startSentinel(_ index: Int, downAfterMs: Int) throws -> UInt16 {
        guard let server = RedisServer.binary else { throw HarnessError.startFailed("redis-server is not installed") }
        for _ in 0..<3 {
            let port = try FreePort.pick()
            let dir = directory.appendingPathComponent("sentinel-\(index)")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            let config = dir.appendingPathComponent("sentinel.conf")
            try """
            port \(port)
            bind 127.0.0.1
            protected-mode no
            daemonize no
            dir \(dir.path)
            sentinel monitor \(Self.masterName) 127.0.0.1 \(masterPort) 2
            sentinel down-after-milliseconds \(Self.masterName) \(downAfterMs)
            sentinel failover-timeout \(Self.masterName) 3000
            sentinel parallel-syncs \(Self.masterName) 1
            \(password.map { "sentinel auth-pass \(Self.masterName) \($0)\nrequirepass \($0)" } ?? "")

            """.write(to: config, atomically: true, encoding: .utf8)
            let (binary, arguments) = Self.sentinelBinary.map { ($0, [config.path]) } ?? (server, [config.path, "--sentinel"])
            let child = try ChildProcess(path: binary, arguments: arguments, environment: ["PATH": "/usr/bin:/bin"],
                                         directory: dir, stdoutPath: dir.appendingPathComponent("sentinel.log").path,
                                         stderrPath: dir.appendingPathComponent("sentinel.err").path)
            if try waitForPing(port, child) {
                sentinels.append(child)
                return port
            }
            child.signal(SIGKILL)
            _ = child.waitForExit(timeout: 5)
        }
        throw HarnessError.startFailed("redis-sentinel \(index) did not start")
    }

    private func waitForPing(_ port: UInt16, _ child: ChildProcess) throws -> Bool {
        let deadline = Deadline(10)
        while !deadline.passed {
            if child.waitForExit(timeout: 0) != nil { return false }
            if (try? Self.query(port: port, "PING", password: password)) == ["PONG"] { return true }
            usleep(20_000)
        }
        return false
    }

    /// What the sentinel on `sentinelPorts[index]` names as the master's port (nil: none).
    func masterPortAsSaid(by index: Int = 0) -> UInt16? {
        guard let reply = try? Self.query(port: sentinelPorts[index], "SENTINEL get-master-addr-by-name \(Self.masterName)",
                                          password: password),
              reply.count == 2 else { return nil }
        return UInt16(reply[1])
    }

    /// SIGKILLs the master (by pid): as abrupt as a crash.
    func killMaster() {
        guard let child = servers.removeValue(forKey: masterPort) else { return }
        child.signal(SIGKILL)
        _ = child.waitForExit(timeout: 5)
    }

    func stopAll() {
        for child in sentinels + Array(servers.values) {
            child.signal(SIGKILL)
            _ = child.waitForExit(timeout: 5)
        }
        sentinels.removeAll()
        servers.removeAll()
    }

    /// Sends one inline command and returns the reply flattened: a status, error, number or
    /// string as one item, an array as its items (one level deep, nested arrays' items inline).
    static func query(port: UInt16, _ line: String, password: String? = nil) throws -> [String] {
        let client = try LineClient(port: port, connectTimeout: 1)
        defer { client.close() }
        if let password {
            try client.send("AUTH \(password)")
            _ = try client.readLine(timeout: 2)
        }
        try client.send(line)
        var out: [String] = []
        func read() throws {
            let head = try client.readLine(timeout: 2)
            guard let kind = head.first else { return }
            let rest = String(head.dropFirst())
            switch kind {
            case "+", "-", ":": out.append(rest)
            case "$":
                guard let count = Int(rest), count >= 0 else { return }
                let bytes = try client.readRaw(count: count + 2, timeout: 2)
                out.append(String(decoding: bytes.dropLast(2), as: UTF8.self))
            case "*":
                for _ in 0..<max(0, Int(rest) ?? 0) { try read() }
            default: out.append(head)
            }
        }
        try read()
        return out
    }

    deinit {
        stopAll()
        try? FileManager.default.removeItem(at: directory)
    }
}
