import Glibc

/// `herald bench rr`: closed-loop request/response load. Each connection keeps
/// `pipeline` identical requests in flight and sends one more for every reply.
enum RequestResponse {
    static let specs: [OptionSpec] = [
        OptionSpec(name: "host", defaultValue: "127.0.0.1", help: "server address"),
        OptionSpec(name: "port", defaultValue: "5000", help: "server port"),
        OptionSpec(name: "target", defaultValue: "herald", help: "herald | redis (redis: no welcome line, RESP replies)"),
        OptionSpec(name: "connections", defaultValue: "50", help: "concurrent connections"),
        OptionSpec(name: "pipeline", defaultValue: "1", help: "requests in flight per connection"),
        OptionSpec(name: "duration", defaultValue: "10", help: "measured seconds (after the warmup)"),
        OptionSpec(name: "warmup", defaultValue: "1", help: "seconds of load before measuring"),
        OptionSpec(name: "request", defaultValue: "", help: "request line (default: randomNumber for herald, PING for redis)"),
        OptionSpec(name: "threads", defaultValue: "1", help: "client threads, each with its own epoll loop"),
        OptionSpec(name: "json", defaultValue: nil, help: "print one JSON object instead of the text line"),
        OptionSpec(name: "tls", defaultValue: nil, help: "speak TLS (herald's secure or tlsPort listener; the certificate is not verified)"),
    ]

    struct Config {
        var endpoint: Endpoint
        var target: String
        var connections: Int
        var pipeline: Int
        var duration: Double
        var warmup: Double
        var request: String
        var threads: Int
        var json: Bool
        var tls: Bool
    }

    static func run(_ options: Options) throws -> Int32 {
        let target = try options.choice("target", ["herald", "redis"])
        var request = options.string("request")
        if request.isEmpty { request = target == "herald" ? "randomNumber" : "PING" }
        guard !request.contains("\n"), !request.contains("\r") else {
            throw BenchError.usage("--request must be a single line")
        }
        let connections = try options.int("connections", min: 1, max: 100_000)
        let config = Config(
            endpoint: try Endpoint(host: options.string("host"), port: options.int("port", min: 1, max: 65535)),
            target: target,
            connections: connections,
            pipeline: try options.int("pipeline", min: 1, max: 10_000),
            duration: try options.seconds("duration", min: 0.1),
            warmup: try options.seconds("warmup"),
            request: request,
            threads: min(try options.int("threads", min: 1, max: 64), connections),
            json: options.flag("json"),
            tls: options.flag("tls"))
        try Limits.require(sockets: config.connections)
        return try measure(config)
    }

    static func measure(_ config: Config) throws -> Int32 {
        let all = try Connector.open(config.connections, to: config.endpoint,
                                     readWelcome: config.target == "herald" && !config.tls)
        defer { for c in all { c.close() } }
        if config.tls { try BenchTLS.start(all, endpoint: config.endpoint, readWelcome: config.target == "herald") }

        let start = Clock.nanos()
        let measureStart = start + UInt64(config.warmup * 1e9)
        let end = measureStart + UInt64(config.duration * 1e9)
        let line = Array((config.request + "\r\n").utf8)
        let workers = (0..<config.threads).map { t in
            RRWorker(connections: stride(from: t, to: all.count, by: config.threads).map { all[$0] },
                     request: line, pipeline: config.pipeline, resp: config.target == "redis",
                     measureStart: measureStart, end: end)
        }
        runOnThreads(workers.map { w in { w.run() } })

        var histogram = Histogram()
        var requests: UInt64 = 0
        var errors: UInt64 = 0
        for w in workers {
            histogram.merge(w.histogram)
            requests += w.requests
            errors += w.errors
        }
        if let failure = workers.compactMap(\.failure).first {
            throw BenchError.failure(failure + " (\(requests) replies measured before)")
        }
        if requests == 0 {
            throw BenchError.failure("no replies in the measured \(Format.fixed(config.duration, 1))s (is --target right?)")
        }

        var report = Report(mode: "rr")
        report.add("target", config.target)
        report.add("request", config.request)
        report.add("connections", config.connections)
        report.add("pipeline", config.pipeline)
        report.add("tls", config.tls ? "yes" : "no")
        report.add("duration", number: Format.fixed(config.duration, 1))
        report.add("requests", requests)
        report.add("rps", number: Format.fixed(Double(requests) / config.duration, 0))
        report.add("p50", number: Format.millis(histogram.percentile(0.50)))
        report.add("p99", number: Format.millis(histogram.percentile(0.99)))
        report.add("p999", number: Format.millis(histogram.percentile(0.999)))
        report.add("errors", errors)
        print(report.render(json: config.json, units: ["duration": "s", "p50": "ms", "p99": "ms", "p999": "ms"]))
        return 0
    }
}

/// One client thread of `rr`: its own epoll loop over its share of the connections.
/// Owned by that thread from `run()` until it returns; read by the caller only after join.
final class RRWorker: @unchecked Sendable {
    private let connections: [Connection]
    private let request: [UInt8]
    private let pipeline: Int
    private let resp: Bool
    private let measureStart: UInt64
    private let end: UInt64

    /// Send times, a FIFO ring of `pipeline` slots per connection.
    private let sendTimes: UnsafeMutablePointer<UInt64>
    private var ringHead: [Int]
    private var ringCount: [Int]
    private var writing: [Bool]

    private(set) var histogram = Histogram()
    private(set) var requests: UInt64 = 0
    private(set) var errors: UInt64 = 0
    private(set) var failure: String?

    init(connections: [Connection], request: [UInt8], pipeline: Int, resp: Bool, measureStart: UInt64, end: UInt64) {
        self.connections = connections
        self.request = request
        self.pipeline = pipeline
        self.resp = resp
        self.measureStart = measureStart
        self.end = end
        sendTimes = .allocate(capacity: max(1, connections.count * pipeline))
        ringHead = [Int](repeating: 0, count: connections.count)
        ringCount = [Int](repeating: 0, count: connections.count)
        writing = [Bool](repeating: false, count: connections.count)
    }

    deinit { sendTimes.deallocate() }

    func run() {
        let poller: Poller
        do { poller = try Poller() } catch { failure = "epoll_create failed"; return }
        let now = Clock.nanos()
        for (i, c) in connections.enumerated() {
            poller.add(c.fd, pollIn, token: i)
            send(i, count: pipeline, at: now, poller: poller)
        }
        let resp = resp ? RESPReader() : nil
        while failure == nil {
            let now = Clock.nanos()
            if now >= end { break }
            let timeout = Int32(min(100, (end - now) / 1_000_000 + 1))
            poller.wait(timeoutMs: timeout) { i, events in
                guard failure == nil else { return }
                if events & pollOut != 0 { flush(i, poller: poller) }
                if events & (pollIn | pollErr) != 0 { receive(i, poller: poller, resp: resp) }
            }
        }
        for c in connections { poller.remove(c.fd) }
    }

    @inline(__always)
    private func send(_ i: Int, count: Int, at now: UInt64, poller: Poller) {
        let c = connections[i]
        let base = i * pipeline
        for _ in 0..<count {
            sendTimes[base + (ringHead[i] + ringCount[i]) % pipeline] = now
            ringCount[i] += 1
            c.output.append(request)
        }
        flush(i, poller: poller)
    }

    @inline(__always)
    private func flush(_ i: Int, poller: Poller) {
        let c = connections[i]
        guard c.flush() else {
            failure = "write to connection \(i) failed: \(errnoText())"
            return
        }
        let blocked = c.output.pending > 0
        if blocked != writing[i] {
            writing[i] = blocked
            poller.modify(c.fd, blocked ? (pollIn | pollOut) : pollIn, token: i)
        }
    }

    @inline(__always)
    private func completed(_ i: Int, at now: UInt64, isError: Bool) {
        guard ringCount[i] > 0 else { return }        // a reply to nothing we sent: ignore
        let sent = sendTimes[i * pipeline + ringHead[i]]
        ringHead[i] = (ringHead[i] + 1) % pipeline
        ringCount[i] -= 1
        if now >= measureStart {
            requests += 1
            histogram.record(now &- sent)
            if isError { errors += 1 }
        }
    }

    private func receive(_ i: Int, poller: Poller, resp: RESPReader?) {
        let c = connections[i]
        let n = c.read()
        if n == -1 { return }
        if n <= 0 {
            failure = n == 0 ? "server closed connection \(i)" : "read from connection \(i) failed: \(errnoText())"
            return
        }
        let now = Clock.nanos()
        let before = ringCount[i]
        if let resp {
            do {
                while let length = try resp.read(c.input.unconsumed) {
                    completed(i, at: now, isError: resp.kind == UInt8(ascii: "-"))
                    c.input.consume(length)
                }
            } catch {
                failure = "connection \(i): the reply is not RESP (is the server redis?)"
                return
            }
        } else {
            while let line = c.input.nextLine() {
                // Only replies count; welcome, keep-alive and chat lines are skipped.
                guard line.contains("\"context\":\"response\"") else { continue }
                completed(i, at: now, isError: line.contains("\"error\""))
            }
        }
        let replies = before - ringCount[i]
        if replies > 0 && now < end { send(i, count: replies, at: now, poller: poller) }
    }
}
