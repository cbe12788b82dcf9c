import Foundation
import Glibc

/// A real Redis Cluster for the tests: three masters and three replicas on free
/// loopback ports (each with its own cluster bus port), `cluster-node-timeout` 1000 ms,
/// no persistence, made with `redis-cli --cluster create … --cluster-replicas 1`. Every
/// process is stopped by its PID when the cluster is stopped (or deinitialized).
final class RedisClusterSetup: @unchecked Sendable {
    struct Node {
        let port: UInt16
        let directory: URL
        var process: ChildProcess?
    }

    private(set) var nodes: [Node] = []
    let directory: URL
    var url: String { "redis-cluster://" + nodes.prefix(3).map { "127.0.0.1:\($0.port)" }.joined(separator: ",") }

    init(size: Int = 6) throws {
        guard let binary = RedisServer.binary else { throw HarnessError.startFailed("redis-server is not installed") }
        directory = try makeTempDir("herald-rcluster")
        var taken = Set<UInt16>()
        func freshPort() throws -> UInt16 {
            while true {
                let port = try FreePort.pick()
                if taken.insert(port).inserted { return port }
            }
        }
        for index in 0..<size {
            let port = try freshPort()
            let bus = try freshPort()
            let dir = directory.appendingPathComponent("n\(index)")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            let child = try ChildProcess(
                path: binary,
                arguments: ["--port", String(port), "--cluster-port", String(bus), "--bind", "127.0.0.1",
                            "--cluster-enabled", "yes", "--cluster-config-file", dir.appendingPathComponent("nodes.conf").path,
                            "--cluster-node-timeout", "1000", "--repl-diskless-sync-delay", "0", "--save", "", "--appendonly", "no", "--daemonize", "no",
                            "--dir", dir.path, "--protected-mode", "no"],
                environment: ["PATH": "/usr/bin:/bin"], directory: dir,
                stdoutPath: dir.appendingPathComponent("redis.log").path,
                stderrPath: dir.appendingPathComponent("redis.err").path)
            nodes.append(Node(port: port, directory: dir, process: child))
        }
        do {
            for node in nodes { try Self.waitFor("PING on \(node.port)", 10) { (try? Self.query(node.port, "PING")) == "PONG" } }
            let create = try ChildProcess(
                path: "/usr/bin/redis-cli",
                arguments: ["--cluster", "create"] + nodes.map { "127.0.0.1:\($0.port)" } + ["--cluster-replicas", "1", "--cluster-yes"],
                environment: ["PATH": "/usr/bin:/bin"], directory: directory,
                stdoutPath: directory.appendingPathComponent("create.log").path,
                stderrPath: directory.appendingPathComponent("create.err").path)
            guard case .exited(0)? = create.waitForExit(timeout: 30) else {
                throw HarnessError.startFailed("redis-cli --cluster create failed: \((try? String(contentsOf: directory.appendingPathComponent("create.log"), encoding: .utf8)) ?? "")")
            }
            try waitUntilHealthy(20)
        } catch {
            stop()
            throw error
        }
    }

    /// Waits until every running node says `cluster_state:ok` and every replica has
    /// finished its first sync (a replica that never synced cannot be promoted).
    func waitUntilHealthy(_ seconds: Double) throws {
        try Self.waitFor("cluster_state:ok on every node, replicas in sync", seconds) {
            for node in nodes where node.process != nil {
                guard let info = try? Self.query(node.port, "CLUSTER INFO"), info.contains("cluster_state:ok"),
                      let replication = try? Self.query(node.port, "INFO replication") else { return false }
                if replication.contains("role:slave") && !replication.contains("master_link_status:up") { return false }
            }
            return true
        }
    }

    /// `CLUSTER NODES` as seen from a running node: port → (role, master's port or nil).
    func topology() throws -> [UInt16: (master: Bool, failed: Bool, slots: Bool)] {
        guard let node = nodes.first(where: { $0.process != nil }) else { return [:] }
        let text = try Self.query(node.port, "CLUSTER NODES")
        var out: [UInt16: (master: Bool, failed: Bool, slots: Bool)] = [:]
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard fields.count >= 8, let colon = fields[1].firstIndex(of: ":") else { continue }
            let portText = fields[1][fields[1].index(after: colon)...].prefix { $0.isNumber }
            guard let port = UInt16(portText) else { continue }
            let flags = fields[2]
            out[port] = (flags.contains("master"), flags.contains("fail"), fields.count > 8)
        }
        return out
    }

    /// The master serving `slot`, by `CLUSTER SHARDS`-equivalent `CLUSTER NODES` ranges.
    func master(ofSlot slot: Int) throws -> UInt16? {
        guard let node = nodes.first(where: { $0.process != nil }) else { return nil }
        let text = try Self.query(node.port, "CLUSTER NODES")
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard fields.count > 8, fields[2].contains("master"), !fields[2].contains("fail"),
                  let colon = fields[1].firstIndex(of: ":"),
                  let port = UInt16(fields[1][fields[1].index(after: colon)...].prefix { $0.isNumber }) else { continue }
            for range in fields[8...] where !range.hasPrefix("[") {
                let bounds = range.split(separator: "-").compactMap { Int($0) }
                if bounds.count == 1, bounds[0] == slot { return port }
                if bounds.count == 2, (bounds[0]...bounds[1]).contains(slot) { return port }
            }
        }
        return nil
    }

    /// A node's id (the first field of its `CLUSTER NODES` line).
    func nodeID(port: UInt16) throws -> String? {
        let text = try Self.query(port, "CLUSTER NODES")
        return text.split(separator: "\n").first { $0.contains("myself") }.map { String($0.prefix { $0 != " " }) }
    }

    /// Hands an empty slot to another master (`CLUSTER SETSLOT <slot> NODE <id>` on every
    /// running master), as a resharding does once the slot's keys have moved.
    func moveEmptySlot(_ slot: Int, to port: UInt16) throws {
        guard let id = try nodeID(port: port) else { throw HarnessError.mismatch("no id for node \(port)") }
        let masters = try topology().filter { $0.value.master && !$0.value.failed }.map(\.key)
        for master in [port] + masters.filter({ $0 != port }) {
            let reply = try Self.query(master, "CLUSTER SETSLOT \(slot) NODE \(id)")
            guard reply == "OK" else { throw HarnessError.mismatch("CLUSTER SETSLOT on \(master): \(reply)") }
        }
    }

    func pid(ofPort port: UInt16) -> pid_t? { nodes.first { $0.port == port }?.process?.pid }

    /// SIGKILL to one node by its PID (a crash).
    func kill(port: UInt16) {
        guard let index = nodes.firstIndex(where: { $0.port == port }), let process = nodes[index].process else { return }
        process.signal(SIGKILL)
        _ = process.waitForExit(timeout: 5)
        nodes[index].process = nil
    }

    func stop() {
        for index in nodes.indices {
            if let process = nodes[index].process {
                process.signal(SIGKILL)
                _ = process.waitForExit(timeout: 5)
            }
            nodes[index].process = nil
        }
    }

    /// CPU time (utime + stime, in clock ticks) of a node's process, from /proc.
    func cpuTicks(port: UInt16) -> Int? {
        guard let pid = pid(ofPort: port), let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 13, let user = Int(fields[11]), let system = Int(fields[12]) else { return nil }
        return user + system
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(at: directory)
    }

    /// One command (RESP, space-separated words) and its reply as text: a status, an
    /// integer, a bulk string, or an error as "-…".
    static func query(_ port: UInt16, _ command: String) throws -> String {
        let client = try LineClient(port: port, connectTimeout: 1)
        defer { client.close() }
        let words = command.split(separator: " ").map(String.init)
        var resp = "*\(words.count)\r\n"
        for word in words { resp += "$\(word.utf8.count)\r\n\(word)\r\n" }
        try client.sendRaw(resp)
        let first = try client.readLine(timeout: 2)
        guard let kind = first.first else { return "" }
        switch kind {
        case "+", ":": return String(first.dropFirst())
        case "-": return first
        case "$":
            guard let length = Int(first.dropFirst()), length >= 0 else { return "" }
            let body = try client.readRaw(count: length + 2, timeout: 2)
            return String(decoding: body.dropLast(2), as: UTF8.self)
        case "*":
            // A flat array of bulk strings and integers, one a line.
            guard let count = Int(first.dropFirst()), count > 0 else { return "" }
            var items: [String] = []
            for _ in 0..<count {
                let line = try client.readLine(timeout: 2)
                if line.hasPrefix("$"), let length = Int(line.dropFirst()), length >= 0 {
                    items.append(String(decoding: try client.readRaw(count: length + 2, timeout: 2).dropLast(2), as: UTF8.self))
                } else {
                    items.append(String(line.dropFirst()))
                }
            }
            return items.joined(separator: "\n")
        default: return first
        }
    }

    static func waitFor(_ what: String, _ seconds: Double, _ body: () throws -> Bool) throws {
        let deadline = Deadline(seconds)
        while !deadline.passed {
            if try body() { return }
            usleep(50_000)
        }
        throw HarnessError.timeout("\(what) within \(seconds) s")
    }
}
