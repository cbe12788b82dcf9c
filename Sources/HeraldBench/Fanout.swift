/// `herald bench fanout`: room broadcast. Publishers say numbered, timestamped messages
/// into one room; subscribers count what arrives, in which order, and how late.
enum Fanout {
    static let specs: [OptionSpec] = [
        OptionSpec(name: "host", defaultValue: "127.0.0.1", help: "server address (publishers)"),
        OptionSpec(name: "port", defaultValue: "5000", help: "server port (publishers)"),
        OptionSpec(name: "sub-host", defaultValue: "", help: "address for the subscribers (default: --host)"),
        OptionSpec(name: "sub-port", defaultValue: "0", help: "port for the subscribers (default: --port)"),
        OptionSpec(name: "target", defaultValue: "herald", help: "herald (roomAdd/say) | redis (SUBSCRIBE/PUBLISH)"),
        OptionSpec(name: "subscribers", defaultValue: "50", help: "subscriber connections"),
        OptionSpec(name: "publishers", defaultValue: "1", help: "publisher connections"),
        OptionSpec(name: "rate", defaultValue: "0", help: "messages/s per publisher, 0 = as fast as the window allows"),
        OptionSpec(name: "messages", defaultValue: "100000", help: "messages per publisher"),
        OptionSpec(name: "duration", defaultValue: "10", help: "cap on the publishing time, seconds"),
        OptionSpec(name: "window", defaultValue: "64", help: "unacknowledged say/PUBLISH replies per publisher"),
        OptionSpec(name: "room", defaultValue: "benchRoom", help: "room (herald) or channel (redis)"),
        OptionSpec(name: "json", defaultValue: nil, help: "print one JSON object instead of the text line"),
    ]

    struct Config {
        var endpoint: Endpoint
        var subEndpoint: Endpoint
        var redis: Bool
        var subscribers: Int
        var publishers: Int
        var rate: Double
        var messages: Int
        var duration: Double
        var window: Int
        var room: String
        var json: Bool
    }

    static let straggler: Double = 2   // seconds to wait for late deliveries

    static func run(_ options: Options) throws -> Int32 {
        let target = try options.choice("target", ["herald", "redis"])
        let room = options.string("room")
        guard !room.isEmpty, !room.utf8.contains(where: { $0 <= 0x20 || $0 == 0x7F }) else {
            throw BenchError.usage("--room must be one word without spaces or control characters")
        }
        let host = options.string("host")
        let port = try options.int("port", min: 1, max: 65535)
        let subHost = options.string("sub-host").isEmpty ? host : options.string("sub-host")
        let subPort = try options.int("sub-port", min: 0, max: 65535)
        guard let rate = Double(options.string("rate")), rate.isFinite, rate >= 0 else {
            throw BenchError.usage("--rate must be a number >= 0, got '\(options.string("rate"))'")
        }
        let config = Config(
            endpoint: try Endpoint(host: host, port: port),
            subEndpoint: try Endpoint(host: subHost, port: subPort == 0 ? port : subPort),
            redis: target == "redis",
            subscribers: try options.int("subscribers", min: 1, max: 100_000),
            publishers: try options.int("publishers", min: 1, max: 10_000),
            rate: rate,
            messages: try options.int("messages", min: 1, max: 1_000_000_000),
            duration: try options.seconds("duration", min: 0.1),
            window: try options.int("window", min: 1, max: 1_000_000),
            room: room,
            json: options.flag("json"))
        try Limits.require(sockets: config.subscribers + config.publishers)
        return try FanoutRun(config).run()
    }
}

/// One fanout run on one epoll loop. Tokens: subscribers 0..<S, publishers S..<S+P.
final class FanoutRun {
    private let config: Fanout.Config
    private var subs: [Connection] = []
    private var pubs: [Connection] = []
    private let poller: Poller
    private let resp = RESPReader()

    // Publishers.
    private var sent: [Int]
    private var acked: [Int]
    private var writing: [Bool]
    private let sayPrefix: [UInt8]       // "say <room> " or "PUBLISH <room> "
    private var errors = 0

    // Subscribers.
    private var lastSeq: [Int]           // per (publisher, subscriber), -1 before the first
    private var received = 0
    private var outOfOrder = 0
    private var histogram = Histogram()
    private var lastDelivery: UInt64 = 0
    private var closedSubscribers = 0    // dropped by the server (e.g. a slow-consumer limit)

    private var failure: String?

    init(_ config: Fanout.Config) throws {
        self.config = config
        poller = try Poller()
        sent = [Int](repeating: 0, count: config.publishers)
        acked = sent
        writing = [Bool](repeating: false, count: config.publishers)
        sayPrefix = Array(((config.redis ? "PUBLISH " : "say ") + config.room + " ").utf8)
        lastSeq = [Int](repeating: -1, count: config.publishers * config.subscribers)
    }

    func run() throws -> Int32 {
        subs = try Connector.open(config.subscribers, to: config.subEndpoint, readWelcome: !config.redis)
        defer { for c in subs + pubs { c.close() } }
        pubs = try Connector.open(config.publishers, to: config.endpoint, readWelcome: !config.redis)
        try join()

        for (i, c) in (subs + pubs).enumerated() { poller.add(c.fd, pollIn, token: i) }
        let start = Clock.nanos()
        let publishEnd = start + UInt64(config.duration * 1e9)
        var drainEnd: UInt64 = .max
        var publishedUntil = start
        while failure == nil {
            let now = Clock.nanos()
            if drainEnd == .max {
                if now >= publishEnd || (0..<pubs.count).allSatisfy({ sent[$0] == config.messages && acked[$0] == sent[$0] }) {
                    publishedUntil = now
                    drainEnd = now + UInt64(Fanout.straggler * 1e9)
                } else {
                    for p in 0..<pubs.count { publish(p, elapsed: Double(now - start) / 1e9) }
                }
            }
            if drainEnd != .max && (now >= drainEnd || received >= expected) { break }
            let timeout: Int32 = drainEnd == .max && config.rate > 0 ? 1 : 20
            poller.wait(timeoutMs: timeout) { token, events in
                guard failure == nil else { return }
                if token < subs.count {
                    deliver(token)
                } else {
                    let p = token - subs.count
                    if events & pollOut != 0 { flush(p) }
                    if events & (pollIn | pollErr) != 0 { acknowledge(p) }
                }
            }
        }
        if let failure { throw BenchError.failure(failure) }
        report(elapsed: Double((lastDelivery > 0 ? lastDelivery : publishedUntil) - start) / 1e9)
        if closedSubscribers > 0 {
            throw BenchError.failure("the server closed \(closedSubscribers) of the \(subs.count) subscriber connections")
        }
        return 0
    }

    private var totalSent: Int { sent.reduce(0, +) }
    private var expected: Int { totalSent * subs.count }

    // MARK: setup

    /// Subscribes every subscriber (herald: every connection joins the room) and waits
    /// for each confirmation.
    private func join() throws {
        let members = config.redis ? subs : subs + pubs
        let command = Array(((config.redis ? "SUBSCRIBE " : "roomAdd ") + config.room + "\r\n").utf8)
        let setup = try Poller()
        for (i, c) in members.enumerated() {
            c.output.append(command)
            guard c.output.flush(to: c.fd) else { throw BenchError.failure("write failed: \(errnoText())") }
            setup.add(c.fd, pollIn, token: i)
        }
        var waiting = Set(0..<members.count)
        var refusal: String?
        let deadline = Clock.nanos() + 10_000_000_000
        while !waiting.isEmpty && refusal == nil {
            if Clock.nanos() > deadline {
                throw BenchError.failure("\(waiting.count) of \(members.count) connections got no reply to '\(String(decoding: command.dropLast(2), as: UTF8.self))' within 10s")
            }
            setup.wait(timeoutMs: 50) { i, _ in
                let c = members[i]
                let n = c.input.read(from: c.fd)
                if n == 0 || n == -2 { refusal = "server closed a connection while joining"; return }
                if config.redis {
                    guard let length = try? resp.read(c.input.unconsumed) else { return }
                    if resp.kind == UInt8(ascii: "*") && resp.element(0).equals("subscribe") {
                        waiting.remove(i)
                    } else {
                        refusal = "unexpected reply to SUBSCRIBE"
                    }
                    c.input.consume(length)
                } else {
                    while let line = c.input.nextLine() {
                        guard line.contains("\"context\":\"response\"") else { continue }
                        if line.contains("\"status\":\"OK\"") || line.contains("already in this room") {
                            waiting.remove(i)
                        } else {
                            refusal = "roomAdd refused: " + String(decoding: line, as: UTF8.self)
                        }
                    }
                }
            }
        }
        if let refusal { throw BenchError.failure(refusal) }
    }

    // MARK: publishers

    private func publish(_ p: Int, elapsed: Double) {
        var allowed = config.messages
        if config.rate > 0 { allowed = min(allowed, Int(config.rate * elapsed) + 1) }
        guard sent[p] < allowed && sent[p] - acked[p] < config.window else { return }
        let c = pubs[p]
        let micros = Clock.micros()
        while sent[p] < allowed && sent[p] - acked[p] < config.window {
            let out = c.output.reserve(sayPrefix.count + 70)
            sayPrefix.withUnsafeBufferPointer { out.update(from: $0.baseAddress!, count: $0.count) }
            var n = sayPrefix.count
            n += Payload.write(publisher: p, sequence: sent[p], micros: micros, to: out + n)
            out[n] = 0x0D
            out[n + 1] = 0x0A
            c.output.commit(n + 2)
            sent[p] += 1
        }
        flush(p)
    }

    private func flush(_ p: Int) {
        let c = pubs[p]
        guard c.output.flush(to: c.fd) else { failure = "write to publisher \(p) failed: \(errnoText())"; return }
        let blocked = c.output.pending > 0
        if blocked != writing[p] {
            writing[p] = blocked
            poller.modify(c.fd, blocked ? (pollIn | pollOut) : pollIn, token: subs.count + p)
        }
    }

    private func acknowledge(_ p: Int) {
        let c = pubs[p]
        guard readSome(c, "publisher \(p)") else { return }
        while let line = c.input.nextLine() {
            if config.redis {
                // Replies to PUBLISH are integers (":<receivers>"); "-" is an error.
                guard let first = line.first else { continue }
                if first == UInt8(ascii: "-") { errors += 1 } else if first != UInt8(ascii: ":") { continue }
            } else {
                // Other publishers' chat lines also arrive here: only replies count.
                guard line.contains("\"context\":\"response\"") else { continue }
                if !line.contains("\"status\":\"OK\"") { errors += 1 }
            }
            acked[p] += 1
        }
    }

    // MARK: subscribers

    private func deliver(_ s: Int) {
        let c = subs[s]
        let n = c.input.read(from: c.fd)
        if n == -1 { return }
        if n <= 0 {
            // A server may drop a subscriber that cannot keep up: count it, keep measuring.
            closedSubscribers += 1
            poller.remove(c.fd)
            c.close()
            return
        }
        let now = Clock.micros()
        if config.redis {
            do {
                while let length = try resp.read(c.input.unconsumed) {
                    if resp.kind == UInt8(ascii: "*") && resp.count == 3 && resp.element(0).equals("message") {
                        count(Payload.parse(resp.element(2)), subscriber: s, now: now)
                    }
                    c.input.consume(length)
                }
            } catch {
                failure = "subscriber \(s): the server does not speak RESP"
            }
        } else {
            while let line = c.input.nextLine() {
                // A chat line starts with its message (PROTOCOL.md §5): checking the prefix
                // is all the client needs; the payload's own format says whether it is ours.
                guard line.hasPrefix("{\"message\":\"") else { continue }
                count(Payload.parse(UnsafeBufferPointer(rebasing: line[12...])), subscriber: s, now: now)
            }
        }
    }

    @inline(__always)
    private func count(_ payload: (publisher: Int, sequence: Int, micros: UInt64)?, subscriber s: Int, now: UInt64) {
        guard let payload, payload.publisher < pubs.count else { return }   // not ours
        received += 1
        histogram.record(now > payload.micros ? (now - payload.micros) * 1000 : 0)
        let k = payload.publisher * subs.count + s
        if payload.sequence <= lastSeq[k] { outOfOrder += 1 } else { lastSeq[k] = payload.sequence }
        lastDelivery = now * 1000
    }

    /// Reads once; records a failure when the server closed the connection.
    private func readSome(_ c: Connection, _ who: String) -> Bool {
        let n = c.input.read(from: c.fd)
        if n > 0 { return true }
        if n == 0 { failure = "server closed the connection of \(who)" }
        if n == -2 { failure = "read from \(who) failed: \(errnoText())" }
        return false
    }

    // MARK: result

    private func report(elapsed: Double) {
        var r = Report(mode: "fanout")
        r.add("target", config.redis ? "redis" : "herald")
        r.add("room", config.room)
        r.add("subscribers", subs.count)
        r.add("publishers", pubs.count)
        r.add("rate", number: Format.fixed(config.rate, 0))
        r.add("sent", totalSent)
        r.add("elapsed", number: Format.fixed(elapsed, 2))
        r.add("deliveries", received)
        r.add("deliveries_per_s", number: Format.fixed(elapsed > 0 ? Double(received) / elapsed : 0, 0))
        r.add("expected", expected)
        r.add("lost", max(0, expected - received))
        r.add("out_of_order", outOfOrder)
        r.add("p50", number: Format.millis(histogram.percentile(0.50)))
        r.add("p99", number: Format.millis(histogram.percentile(0.99)))
        r.add("errors", errors)
        if closedSubscribers > 0 { r.add("closed_subscribers", closedSubscribers) }
        print(r.render(json: config.json, units: ["elapsed": "s", "p50": "ms", "p99": "ms"]))
    }
}
