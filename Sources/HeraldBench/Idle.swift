import Glibc

/// `herald bench idle`: how much server memory one idle connection costs. Reads the
/// server's VmRSS, opens the connections, lets them sit, reads VmRSS again.
enum Idle {
    static let specs: [OptionSpec] = [
        OptionSpec(name: "host", defaultValue: "127.0.0.1", help: "server address"),
        OptionSpec(name: "port", defaultValue: "5000", help: "server port"),
        OptionSpec(name: "target", defaultValue: "herald", help: "herald (waits for each welcome line) | redis"),
        OptionSpec(name: "connections", defaultValue: "10000", help: "idle connections to open"),
        OptionSpec(name: "pid", defaultValue: "", help: "server pid(s) whose VmRSS is summed, comma separated (required)"),
        OptionSpec(name: "hold", defaultValue: "5", help: "seconds to let the RSS settle before the second reading"),
        OptionSpec(name: "tls", defaultValue: nil, help: "open TLS sessions (herald's secure or tlsPort listener; not verified)"),
        OptionSpec(name: "json", defaultValue: nil, help: "print one JSON object instead of the text line"),
    ]

    static func run(_ options: Options) throws -> Int32 {
        let target = try options.choice("target", ["herald", "redis"])
        let pidText = options.string("pid")
        let pids = pidText.split(separator: ",", omittingEmptySubsequences: false).map { Int32($0.trimmed) }
        guard !pidText.isEmpty, !pids.isEmpty, pids.allSatisfy({ ($0 ?? 0) > 0 }) else {
            throw BenchError.usage("--pid needs the server's pid(s), e.g. --pid 1234 or --pid 1234,1235")
        }
        let endpoint = try Endpoint(host: options.string("host"), port: options.int("port", min: 1, max: 65535))
        let count = try options.int("connections", min: 1, max: 1_000_000)
        let hold = try options.seconds("hold")
        try Limits.require(sockets: count)

        let before = try rssKiB(pids.map { $0! })
        let tls = options.flag("tls")
        let connections = try Connector.open(count, to: endpoint, readWelcome: target == "herald" && !tls, inputCapacity: 256)
        if tls { try BenchTLS.start(connections, endpoint: endpoint, readWelcome: target == "herald") }
        defer { for c in connections { c.close() } }
        let settleStart = Clock.nanos()
        // Sleep in short steps; the connections are idle, nothing to read.
        while Clock.nanos() - settleStart < UInt64(hold * 1e9) { usleep(100_000) }
        let after = try rssKiB(pids.map { $0! })
        let closedByServer = countClosed(connections)

        var r = Report(mode: "idle")
        r.add("target", target)
        r.add("tls", tls ? "yes" : "no")
        r.add("connections", count)
        r.add("rss_before", before)
        r.add("rss_after", after)
        r.add("bytes_per_connection", (after - before) * 1024 / count)
        if closedByServer > 0 { r.add("closed_by_server", closedByServer) }
        print(r.render(json: options.flag("json"), units: ["rss_before": "KiB", "rss_after": "KiB"]))
        if closedByServer > 0 {
            throw BenchError.failure("the server closed \(closedByServer) of the \(count) idle connections during the hold")
        }
        return 0
    }

    /// The summed VmRSS of `pids`, in KiB, from /proc/<pid>/status.
    static func rssKiB(_ pids: [Int32]) throws -> Int {
        var total = 0
        for pid in pids {
            guard let status = readFile("/proc/\(pid)/status") else {
                throw BenchError.usage("cannot read /proc/\(pid)/status: is \(pid) a running process?")
            }
            guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
                  let kib = Int(line.dropFirst(6).trimmed.split(separator: " ").first ?? "") else {
                throw BenchError.failure("no VmRSS in /proc/\(pid)/status (a zombie or kernel thread?)")
            }
            total += kib
        }
        return total
    }

    static func readFile(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            bytes += chunk[0..<n]
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// How many of the connections the server has closed (readable with end of stream or
    /// an error). Data that arrived (e.g. a keep-alive line) is not a close.
    static func countClosed(_ connections: [Connection]) -> Int {
        var closed = 0
        var probe: UInt8 = 0
        for c in connections {
            let n = recv(c.fd, &probe, 1, Int32(MSG_PEEK | MSG_DONTWAIT))
            if n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) { closed += 1 }
        }
        return closed
    }
}

extension Substring {
    var trimmed: Substring {
        var s = self
        while let f = s.first, f == " " || f == "\t" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" { s = s.dropLast() }
        return s
    }
}
