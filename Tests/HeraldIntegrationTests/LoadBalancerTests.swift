import Foundation
import Glibc
import Testing
@testable import HeraldTestSupport

/// Two herald "hosts" on one Redis behind HAProxy, configured with the shipped
/// deploy/haproxy.cfg (its listen address and servers pointed at loopback).
@Suite("Several hosts behind HAProxy", .serialized)
struct LoadBalancerTests {
    static var haproxyBinary: String? {
        ["/usr/sbin/haproxy", "/usr/bin/haproxy", "/usr/local/sbin/haproxy"].first { access($0, X_OK) == 0 }
    }

    /// deploy/haproxy.cfg with the frontend on `port` and the given backend servers
    /// (client port, and the metrics port its health check asks).
    static func configuration(port: UInt16, servers: [(port: UInt16, metrics: UInt16)]) throws -> String {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let shipped = try String(contentsOf: root.appendingPathComponent("deploy/haproxy.cfg"), encoding: .utf8)
        var lines: [String] = []
        for line in shipped.split(separator: "\n", omittingEmptySubsequences: false) {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.hasPrefix("server ") || trimmed.hasPrefix("log stdout") { continue }
            if trimmed.hasPrefix("bind ") { lines.append("    bind 127.0.0.1:\(port)"); continue }
            lines.append(String(line))
        }
        for (index, server) in servers.enumerated() {
            lines.append("    server host\(index + 1) 127.0.0.1:\(server.port) check port \(server.metrics)")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    @Test("clients spread over both hosts, chat crosses them, a stopped host leaves the rotation")
    func twoHostsBehindHAProxy() throws {
        guard let haproxy = Self.haproxyBinary else {
            throw HarnessError.startFailed("haproxy is not installed (deploy/setup.sh installs it)")
        }
        let redis = try RedisServer()
        var options = HeraldOptions()
        // The shipped check asks each host's GET /health on its metrics port.
        let metricsA = try FreePort.pick()
        let metricsB = try FreePort.pick()
        options.extraArguments = ["--redis", redis.url, "--metrics-port", String(metricsA)]
        options.hostName = "web1"  // each host its own name, as two machines
        let hostA = try HeraldProcess.start(options)
        defer { hostA.stop(); hostA.removeDirectory() }
        options.hostName = "web10"
        options.extraArguments = ["--redis", redis.url, "--metrics-port", String(metricsB)]
        let hostB = try HeraldProcess.start(options)
        defer { hostB.stop(); hostB.removeDirectory() }

        let directory = try makeTempDir("herald-haproxy")
        defer { try? FileManager.default.removeItem(at: directory) }
        let port = try FreePort.pick()
        let config = directory.appendingPathComponent("haproxy.cfg")
        try Self.configuration(port: port, servers: [(hostA.port, metricsA), (hostB.port, metricsB)]).write(to: config, atomically: true, encoding: .utf8)
        let balancer = try ChildProcess(path: haproxy, arguments: ["-db", "-f", config.path], environment: ["PATH": "/usr/bin:/bin"],
                                        directory: directory, stdoutPath: directory.appendingPathComponent("out").path,
                                        stderrPath: directory.appendingPathComponent("err").path)
        defer { _ = balancer.stop(grace: 5) }
        // Ready once both health checks passed: wait until connections reach both hosts.
        var clients: [String: (LineClient, String)] = [:]
        let deadline = Deadline(15)
        while clients.count < 2 && !deadline.passed {
            guard let client = try? LineClient(port: port, connectTimeout: 1),
                  let welcome = try? client.readLine(timeout: 2), welcome.hasPrefix(#"{"welcome""#) else {
                usleep(200_000)
                continue
            }
            try client.send("status")
            let host = try JSON.parse(try client.readLine())["id"]?.stringValue ?? ""
            if clients[host] == nil { clients[host] = (client, host) } else { client.close() }
        }
        #expect(clients.count == 2, "connections reached both hosts: \(clients.keys)")
        let pair = Array(clients.values)
        guard pair.count == 2 else { return }
        let (speaker, listener) = (pair[0].0, pair[1].0)
        try speaker.send("say hello across hosts")
        #expect(try speaker.readLine().contains(#""status":"OK""#))
        let heard = try JSON.parse(try listener.readLine())
        #expect(heard["message"]?.stringValue == "hello across hosts")
        #expect(heard["context"]?.stringValue == "user")

        // Stop host A: its clients get the goodbye, and the health check takes it out.
        let (statusA, _) = hostA.stop()
        #expect(statusA == .exited(0))
        usleep(5_000_000)  // two failed checks at 2 s intervals
        var hosts = Set<String>()
        for _ in 0..<4 {
            let client = try LineClient(port: port)
            defer { client.close() }
            _ = try client.readLine()
            try client.send("status")
            hosts.insert(try JSON.parse(try client.readLine())["id"]?.stringValue ?? "")
        }
        #expect(hosts.count == 1, "only the running host serves: \(hosts)")
    }
}
