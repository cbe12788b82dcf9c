import Glibc

/// `herald bench hold`: one process's share of a connection-scale run (deploy/million.py
/// starts many): opens its connections from several source addresses, says `hold ready`
/// on stdout, then reads every connection and timestamps what arrives — each chat line
/// carrying `--marker` followed by a number is counted under that number, with the
/// monotonic times of its first and last delivery — until the server has closed them all,
/// `--hold` seconds have passed, or SIGTERM/SIGINT. Then one report line: the connect
/// time, per marked message the deliveries and their first/last time, and when the
/// server's closes came (a stop of the host is timed by them).
enum Hold {
    static let specs: [OptionSpec] = [
        OptionSpec(name: "host", defaultValue: "127.0.0.1", help: "server address"),
        OptionSpec(name: "port", defaultValue: "5000", help: "server port"),
        OptionSpec(name: "connections", defaultValue: "10000", help: "connections to open and hold"),
        OptionSpec(name: "sources", defaultValue: "", help: "local IPv4 addresses they come from, in turn: a list of A or A-B ranges, e.g. 127.0.1.1-127.0.1.40 (default: the kernel's choice)"),
        OptionSpec(name: "concurrency", defaultValue: "256", help: "connects in flight at once"),
        OptionSpec(name: "connect-timeout", defaultValue: "300", help: "seconds for all connections to be up (welcome line read)"),
        OptionSpec(name: "marker", defaultValue: "mark-", help: "a chat message containing this text and a number is counted under that number"),
        OptionSpec(name: "hold", defaultValue: "600", help: "at most this many seconds of holding"),
        OptionSpec(name: "json", defaultValue: nil, help: "print one JSON object instead of the text line"),
    ]

    static func run(_ options: Options) throws -> Int32 {
        let endpoint = try Endpoint(host: options.string("host"), port: options.int("port", min: 1, max: 65535))
        let count = try options.int("connections", min: 1, max: 1_000_000)
        let sources = try SourceAddresses.parse(options.string("sources"))
        let concurrency = try options.int("concurrency", min: 1, max: 100_000)
        let connectTimeout = try options.seconds("connect-timeout", min: 1)
        let hold = try options.seconds("hold")
        let marker = Array(options.string("marker").utf8)
        guard !marker.isEmpty else { throw BenchError.usage("--marker must not be empty") }
        try Limits.require(sockets: count)
        StopRequest.install()

        let started = Clock.nanos()
        let connections = try Connector.open(count, to: endpoint, readWelcome: true, inputCapacity: 512,
                                             concurrency: concurrency, sources: sources, timeout: connectTimeout)
        let ready = Clock.nanos()
        var readyLine = Report(mode: "hold")
        readyLine.add("ready", "yes")
        readyLine.add("connections", count)
        readyLine.add("connect_s", number: Format.fixed(Double(ready - started) / 1e9, 2))
        readyLine.add("ready_ns", ready)
        print(readyLine.render(json: options.flag("json")))
        fflush(nil)

        var tally = DeliveryTally(marker: marker)
        let poller = try Poller()
        for (i, c) in connections.enumerated() { poller.add(c.fd, pollIn, token: i) }
        var open = count
        var firstClose: UInt64 = 0
        var lastClose: UInt64 = 0
        var otherLines = 0
        let deadline = ready + UInt64(hold * 1e9)
        while open > 0 && !StopRequest.isRequested && Clock.nanos() < deadline {
            poller.wait(timeoutMs: 100) { i, _ in
                let c = connections[i]
                let n = c.input.read(from: c.fd)
                if n == -1 { return }
                let now = Clock.nanos()
                while let line = c.input.nextLine() {
                    if !tally.count(line, at: now) { otherLines += 1 }
                }
                if n == 0 || n == -2 {
                    poller.remove(c.fd)
                    c.close()
                    open -= 1
                    if firstClose == 0 { firstClose = now }
                    lastClose = now
                }
            }
        }
        for c in connections { c.close() }

        var r = Report(mode: "hold")
        r.add("connections", count)
        r.add("connect_s", number: Format.fixed(Double(ready - started) / 1e9, 2))
        r.add("ready_ns", ready)
        r.add("closed_by_server", count - open)
        if firstClose > 0 {
            r.add("first_close_ns", firstClose)
            r.add("last_close_ns", lastClose)
        }
        r.add("other_lines", otherLines)
        for (number, delivery) in tally.deliveries.sorted(by: { $0.key < $1.key }) {
            r.add("say\(number)_delivered", delivery.count)
            r.add("say\(number)_first_ns", delivery.first)
            r.add("say\(number)_last_ns", delivery.last)
        }
        print(r.render(json: options.flag("json")))
        return 0
    }
}

/// What arrived of the marked messages: per number, how many and when.
struct DeliveryTally {
    struct Delivery { var count = 0; var first: UInt64 = 0; var last: UInt64 = 0 }
    let marker: [UInt8]
    private(set) var deliveries: [Int: Delivery] = [:]

    init(marker: [UInt8]) { self.marker = marker }

    /// Counts `line` when it holds the marker and a number; false when it does not.
    mutating func count(_ line: UnsafeBufferPointer<UInt8>, at now: UInt64) -> Bool {
        guard let start = find(line) else { return false }
        var index = start + marker.count
        var number = 0
        var digits = 0
        while index < line.count, line[index] >= 0x30, line[index] <= 0x39, digits < 9 {
            number = number * 10 + Int(line[index] - 0x30)
            index += 1
            digits += 1
        }
        guard digits > 0 else { return false }
        var delivery = deliveries[number] ?? Delivery()
        if delivery.count == 0 { delivery.first = now }
        delivery.count += 1
        delivery.last = now
        deliveries[number] = delivery
        return true
    }

    /// Where the marker starts in `line`, if anywhere.
    private func find(_ line: UnsafeBufferPointer<UInt8>) -> Int? {
        guard let base = line.baseAddress, line.count > marker.count else { return nil }
        let first = marker[0]
        var from = 0
        while from + marker.count <= line.count, let hit = memchr(base + from, Int32(first), line.count - marker.count + 1 - from) {
            let at = UnsafePointer(hit.assumingMemoryBound(to: UInt8.self)) - base
            if memcmp(base + at, marker, marker.count) == 0 { return at }
            from = at + 1
        }
        return nil
    }
}

/// Local IPv4 addresses for outgoing connections, from `A`, `A-B` and comma lists.
enum SourceAddresses {
    static func parse(_ text: String) throws -> [UInt32] {
        var addresses: [UInt32] = []
        for part in text.split(separator: ",") where !part.isEmpty {
            let ends = part.split(separator: "-", maxSplits: 1)
            guard let low = hostOrder(String(ends[0])) else { throw BenchError.usage("--sources: '\(ends[0])' is not an IPv4 address") }
            var high = low
            if ends.count == 2 {
                guard let h = hostOrder(String(ends[1])), h >= low else {
                    throw BenchError.usage("--sources: '\(part)' is not a range of IPv4 addresses (A-B with A <= B)")
                }
                high = h
            }
            guard high - low < 65_536 else { throw BenchError.usage("--sources: '\(part)' holds more than 65,536 addresses") }
            for a in low...high { addresses.append(a.bigEndian) }
        }
        return addresses
    }

    /// `address` (network order) as text.
    static func text(_ address: UInt32) -> String {
        let h = UInt32(bigEndian: address)
        return "\(h >> 24).\((h >> 16) & 0xFF).\((h >> 8) & 0xFF).\(h & 0xFF)"
    }

    private static func hostOrder(_ text: String) -> UInt32? {
        var address = in_addr()
        guard inet_pton(AF_INET, text, &address) == 1 else { return nil }
        return UInt32(bigEndian: address.s_addr)
    }
}

/// SIGTERM and SIGINT end the hold (the report is still printed).
enum StopRequest {
    nonisolated(unsafe) private static var requested: sig_atomic_t = 0

    static var isRequested: Bool { requested != 0 }

    static func install() {
        let handler: @convention(c) (Int32) -> Void = { _ in StopRequest.requested = 1 }
        signal(SIGTERM, handler)
        signal(SIGINT, handler)
    }
}
