import Foundation
import Glibc
import Testing
@testable import HeraldTestSupport

/// One HTTP/1.1 request to 127.0.0.1:`port` (the responder closes after its answer).
struct HTTPReply {
    var status: Int
    var head: String
    var body: String
}

enum HTTP {
    /// Sends `raw` and reads until the responder closes (it answers one request).
    static func request(port: UInt16, _ raw: [UInt8], timeout: Double = 5) throws -> HTTPReply {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw HarnessError.system("socket", errno) }
        defer { close(fd) }
        var wait = timeval(tv_sec: Int(timeout), tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wait, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &wait, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw HarnessError.system("connect 127.0.0.1:\(port)", errno) }
        var sent = 0
        while sent < raw.count {
            let n = raw.withUnsafeBytes { send(fd, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { break }  // the responder may refuse (and close) before all is sent
            sent += n
        }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            bytes += chunk[0..<n]
        }
        let text = String(decoding: bytes, as: UTF8.self)
        guard let split = text.range(of: "\r\n\r\n") else { throw HarnessError.mismatch("no HTTP response head: \(text.prefix(200))") }
        let head = String(text[..<split.lowerBound])
        let parts = head.split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, let status = Int(parts[1]) else { throw HarnessError.mismatch("bad status line: \(head)") }
        return HTTPReply(status: status, head: head, body: String(text[split.upperBound...]))
    }

    static func get(port: UInt16, _ path: String, method: String = "GET") throws -> HTTPReply {
        try request(port: port, Array("\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".utf8))
    }
}

/// The sum of a series' samples in a Prometheus text body whose line starts with `prefix`.
func sampleSum(_ body: String, _ prefix: String) -> Double {
    body.split(separator: "\n").filter { $0.hasPrefix(prefix) }.compactMap { line in
        line.split(separator: " ").last.flatMap { Double($0) }
    }.reduce(0, +)
}

/// `--metrics-port`: GET /metrics (Prometheus text, checked by promtool and scraped by a
/// real prometheus) and GET /health (Redis down is 503) on the supervisor.
@Suite("Metrics and health", .serialized)
struct MetricsTests {
    static func binary(_ name: String) -> String? {
        ["/usr/bin/\(name)", "/usr/local/bin/\(name)"].first { access($0, X_OK) == 0 }
    }

    /// A 2-worker cluster on its own Redis with the metrics port on.
    static func withMetricsCluster(_ body: (HeraldProcess, RedisServer, UInt16) throws -> Void) throws {
        let redis = try RedisServer()
        let metricsPort = try FreePort.pick()
        var options = ClusterTests.options(workers: 2, redis: redis)
        options.extraArguments += ["--metrics-port", String(metricsPort)]
        try withHerald(options) { server in
            try waitFor("the health check answers 200", timeout: 10) { (try? HTTP.get(port: metricsPort, "/health"))?.status == 200 }
            try body(server, redis, metricsPort)
        }
    }

    static func waitFor(_ what: String, timeout: Double, _ condition: () throws -> Bool) throws {
        let deadline = Deadline(timeout)
        while !deadline.passed {
            if try condition() { return }
            usleep(100_000)
        }
        throw HarnessError.timeout(what)
    }

    /// 7 randomNumber and 3 says, on two connections.
    static func knownTraffic(port: UInt16) throws {
        let a = try LineClient(port: port)
        let b = try LineClient(port: port)
        defer { a.close(); b.close() }
        _ = try a.readLine()
        _ = try b.readLine()
        for _ in 0..<7 {
            try a.send("randomNumber")
            #expect(try a.readLine().contains(#""randomNumber":"#))
        }
        for index in 0..<3 {
            try b.send("say hello \(index)")
            #expect(try b.readLine().contains(#""status":"OK""#))
        }
    }

    @Test("promtool accepts /metrics; a real prometheus scrape answers the query with the counted actions")
    func prometheusScrape() throws {
        guard let promtool = Self.binary("promtool"), let prometheus = Self.binary("prometheus") else {
            throw HarnessError.startFailed("prometheus is not installed (deploy/setup.sh installs it)")
        }
        try Self.withMetricsCluster { server, _, metricsPort in
            try Self.knownTraffic(port: server.port)
            var body = ""
            try Self.waitFor("the workers' reports show 7 randomNumber and 3 says", timeout: 5) {
                body = try HTTP.get(port: metricsPort, "/metrics").body
                return sampleSum(body, #"herald_actions_total{action="randomNumber",result="ok"}"#) == 7
                    && sampleSum(body, "herald_say_total") == 3
            }
            let reply = try HTTP.get(port: metricsPort, "/metrics")
            #expect(reply.head.contains("Content-Type: text/plain; version=0.0.4"))
            for name in ["herald_connections{worker=", "herald_connections_opened_total", "herald_connections_closed_total{reason=",
                         "herald_action_duration_seconds_bucket{action=\"randomNumber\",le=\"+Inf\"} 7", "herald_chat_deliveries_total",
                         "herald_slow_consumer_disconnects_total", "herald_rooms{worker=", "herald_redis_up{worker=\"0\"} 1",
                         "herald_redis_reconnects_total", "herald_redis_command_duration_seconds_count", "herald_workers{state=\"running\"} 2",
                         "herald_worker_restarts_total", "herald_reloads_total", "process_resident_memory_bytes{worker=",
                         "process_cpu_seconds_total{worker=", "process_open_fds{worker="] {
                #expect(body.contains(name), "\(name) in /metrics")
            }
            #expect(sampleSum(body, "herald_connections_opened_total") >= 2)

            let directory = try makeTempDir("herald-prometheus")
            defer { try? FileManager.default.removeItem(at: directory) }
            let metricsFile = directory.appendingPathComponent("metrics.txt")
            try body.write(to: metricsFile, atomically: true, encoding: .utf8)
            let check = try ChildProcess(path: "/bin/sh", arguments: ["-c", "\(promtool) check metrics < \(metricsFile.path)"],
                                         environment: ["PATH": "/usr/bin:/bin"], directory: directory,
                                         stdoutPath: directory.appendingPathComponent("check.out").path,
                                         stderrPath: directory.appendingPathComponent("check.err").path)
            let checked = check.waitForExit(timeout: 20)
            let complaints = ((try? String(contentsOf: directory.appendingPathComponent("check.err"), encoding: .utf8)) ?? "")
                + ((try? String(contentsOf: directory.appendingPathComponent("check.out"), encoding: .utf8)) ?? "")
            #expect(checked == .exited(0), "promtool check metrics: \(complaints)")
            #expect(complaints.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty, "promtool lint: \(complaints)")

            let webPort = try FreePort.pick()
            let config = directory.appendingPathComponent("prometheus.yml")
            try """
            global:
              scrape_interval: 1s
              evaluation_interval: 1s
            scrape_configs:
              - job_name: herald
                static_configs:
                  - targets: ["127.0.0.1:\(metricsPort)"]

            """.write(to: config, atomically: true, encoding: .utf8)
            let scraper = try ChildProcess(path: prometheus,
                                           arguments: ["--config.file=\(config.path)", "--storage.tsdb.path=\(directory.appendingPathComponent("data").path)",
                                                       "--web.listen-address=127.0.0.1:\(webPort)", "--log.level=warn"],
                                           environment: ["PATH": "/usr/bin:/bin"], directory: directory,
                                           stdoutPath: directory.appendingPathComponent("prometheus.out").path,
                                           stderrPath: directory.appendingPathComponent("prometheus.err").path)
            defer { _ = scraper.stop(grace: 5) }
            let query = "sum(herald_actions_total%7Baction%3D%22randomNumber%22%7D)"
            var last = ""
            do {
                try Self.waitFor("prometheus answers sum(herald_actions_total{action=\"randomNumber\"}) = 7", timeout: 30) {
                    guard let reply = try? HTTP.get(port: webPort, "/api/v1/query?query=\(query)") else { return false }
                    last = reply.body
                    guard reply.status == 200, let answer = try? JSON.parse(reply.body),
                          let result = answer["data"]?["result"]?.arrayValue?.first,
                          let value = result["value"]?.arrayValue?.last?.stringValue else { return false }
                    return value == "7"
                }
            } catch {
                let log = (try? String(contentsOf: directory.appendingPathComponent("prometheus.err"), encoding: .utf8)) ?? ""
                Issue.record("last answer: \(last)\nprometheus log: \(log.suffix(2_000))")
                throw error
            }
        }
    }

    @Test("/health: 200, 503 with the reason while Redis is down, 200 again; 404, 405, an oversized request refused")
    func healthFollowsRedis() throws {
        try Self.withMetricsCluster { _, redis, metricsPort in
            let ok = try HTTP.get(port: metricsPort, "/health")
            #expect(ok.status == 200)
            #expect(ok.body.contains(#""status":"ok""#) && ok.body.contains(#""workers":2"#) && ok.body.contains(#""redis":"up""#))
            #expect(try HTTP.get(port: metricsPort, "/health", method: "HEAD").status == 200)
            #expect(try HTTP.get(port: metricsPort, "/").status == 404)
            #expect(try HTTP.get(port: metricsPort, "/metricsx").status == 404)
            #expect(try HTTP.get(port: metricsPort, "/health", method: "POST").status == 405)
            let huge = Array("GET /metrics HTTP/1.1\r\nX-Padding: \(String(repeating: "a", count: 9_000))\r\n\r\n".utf8)
            let refused = try HTTP.request(port: metricsPort, huge)
            #expect(refused.status == 431, "an oversized request head is refused: \(refused.head)")
            redis.kill()
            var down = HTTPReply(status: 0, head: "", body: "")
            try Self.waitFor("/health turns 503 once Redis is down", timeout: 5) {
                down = try HTTP.get(port: metricsPort, "/health")
                return down.status == 503
            }
            #expect(down.body.contains("cannot reach Redis"), "the reason: \(down.body)")
            #expect(down.body.contains(#""redis":"down""#))
            try redis.start()
            try Self.waitFor("/health is 200 again once Redis is back", timeout: 10) {
                (try HTTP.get(port: metricsPort, "/health")).status == 200
            }
            let metrics = try HTTP.get(port: metricsPort, "/metrics").body
            #expect(sampleSum(metrics, "herald_redis_reconnects_total") >= 1)
        }
    }

    @Test("counters do not go down across a reload (retired workers' counts are kept)")
    func countersSurviveReload() throws {
        try Self.withMetricsCluster { server, _, metricsPort in
            try Self.knownTraffic(port: server.port)
            let actions = #"herald_actions_total{action="randomNumber",result="ok"}"#
            try Self.waitFor("7 actions reported", timeout: 5) {
                sampleSum(try HTTP.get(port: metricsPort, "/metrics").body, actions) == 7
            }
            let before = try HTTP.get(port: metricsPort, "/metrics").body
            let oldPIDs = Set(ClusterTests.runningWorkerPIDs(try ClusterTests.status(server)))
            let reload = try ClusterTests.cli(server, ["reload"])
            #expect(reload.status == .exited(0), "reload: \(reload.stderr)")
            _ = try ClusterTests.waitForStatus(server, timeout: 20, "both workers replaced") { status in
                let pids = ClusterTests.runningWorkerPIDs(status)
                return pids.count == 2 && oldPIDs.isDisjoint(with: pids) && (status["workers"]?.arrayValue?.count ?? 0) == 2
            }
            let after = try HTTP.get(port: metricsPort, "/metrics").body
            for series in [actions, "herald_say_total", "herald_connections_opened_total", "herald_connections_closed_total",
                           "herald_redis_command_duration_seconds_count"] {
                #expect(sampleSum(after, series) >= sampleSum(before, series), "\(series) not lower after the reload")
            }
            #expect(sampleSum(after, actions) == 7)
            #expect(sampleSum(after, "herald_say_total") == 3)
            #expect(sampleSum(after, "herald_reloads_total") == 1)
        }
    }

    @Test("a crashed worker's counts are kept; herald_worker_restarts_total counts its replacement")
    func countersSurviveCrash() throws {
        try Self.withMetricsCluster { server, _, metricsPort in
            try Self.knownTraffic(port: server.port)
            let actions = #"herald_actions_total{action="randomNumber",result="ok"}"#
            try Self.waitFor("7 actions reported", timeout: 5) {
                sampleSum(try HTTP.get(port: metricsPort, "/metrics").body, actions) == 7
            }
            let before = try HTTP.get(port: metricsPort, "/metrics").body
            let pids = ClusterTests.runningWorkerPIDs(try ClusterTests.status(server))
            #expect(pids.count == 2)
            guard let victim = pids.first else { return }
            kill(pid_t(victim), SIGKILL)
            _ = try ClusterTests.waitForStatus(server, timeout: 15, "the crashed worker replaced") { status in
                let now = ClusterTests.runningWorkerPIDs(status)
                return now.count == 2 && !now.contains(victim)
            }
            try Self.waitFor("/health is 200 after the replacement", timeout: 10) {
                (try HTTP.get(port: metricsPort, "/health")).status == 200
            }
            let after = try HTTP.get(port: metricsPort, "/metrics").body
            for series in [actions, "herald_say_total", "herald_connections_opened_total"] {
                #expect(sampleSum(after, series) >= sampleSum(before, series), "\(series) not lower after the crash")
            }
            #expect(sampleSum(after, actions) == 7)
            #expect(sampleSum(after, "herald_worker_restarts_total") == 1)
        }
    }
}
