import Glibc
import HeraldProtocol

/// `herald bench soak`: a hostile mix against a running cluster for minutes, watching the
/// workers from /proc. Slow readers, stalled readers past the output limit, pipelined
/// floods, connection churn, half-closes, huge says to listeners on every worker, and
/// join/leave storms run side by side; every line the server sends must be JSON and every
/// request a client waits for must be answered. Every few seconds each worker's VmRSS is
/// sampled (workers: the supervisor's children running the same binary); a worker whose
/// pid changes counts as a restart. Ends with a table and a verdict line; exit status 1
/// when the verdict is FAIL.
enum Soak {
    static let specs: [OptionSpec] = [
        OptionSpec(name: "host", defaultValue: "127.0.0.1", help: "server address"),
        OptionSpec(name: "port", defaultValue: "5000", help: "server port"),
        OptionSpec(name: "pid", defaultValue: "", help: "the supervisor's pid (required): its workers are watched"),
        OptionSpec(name: "minutes", defaultValue: "10", help: "how long to run"),
        OptionSpec(name: "seconds", defaultValue: "0", help: "how long to run, in seconds (overrides --minutes)"),
        OptionSpec(name: "sample", defaultValue: "5", help: "seconds between RSS samples"),
        OptionSpec(name: "settle", defaultValue: "3", help: "seconds idle after the load before the last RSS sample"),
        OptionSpec(name: "max-rss-growth", defaultValue: "64", help: "MiB a worker may grow (idle after vs. before; last vs. first sample under load)"),
        OptionSpec(name: "max-rss-peak", defaultValue: "256", help: "MiB a worker may reach over its idle RSS at any sample"),
        OptionSpec(name: "say-bytes", defaultValue: "60000", help: "bytes of each huge say, JSON-escaped (near the say limit)"),
        OptionSpec(name: "flood-lines", defaultValue: "20000", help: "most lines in one pipelined burst"),
        OptionSpec(name: "scale", defaultValue: "1", help: "clients of each kind, multiplied"),
        OptionSpec(name: "json", defaultValue: nil, help: "print the final result as one JSON object too"),
    ]

    static func run(_ options: Options) throws -> Int32 {
        let pidText = options.string("pid")
        guard let supervisor = Int32(pidText), supervisor > 0 else {
            throw BenchError.usage("--pid needs the supervisor's pid (herald status shows it)")
        }
        var seconds = try options.seconds("seconds")
        if seconds == 0 { seconds = try Double(options.int("minutes", min: 1, max: 1440)) * 60 }
        let config = SoakRun.Config(
            endpoint: try Endpoint(host: options.string("host"), port: options.int("port", min: 1, max: 65535)),
            supervisor: supervisor,
            seconds: seconds,
            sample: try options.seconds("sample", min: 0.5),
            settle: try options.seconds("settle"),
            maxGrowthKiB: try options.int("max-rss-growth", min: 1) * 1024,
            maxPeakKiB: try options.int("max-rss-peak", min: 1) * 1024,
            sayBytes: try options.int("say-bytes", min: 1, max: 64 << 20),
            floodLines: try options.int("flood-lines", min: 2, max: 1_000_000),
            scale: try options.int("scale", min: 1, max: 100),
            json: options.flag("json"))
        try Limits.require(sockets: 64 * config.scale)
        return try SoakRun(config).run()
    }
}

final class SoakRun {
    struct Config {
        var endpoint: Endpoint
        var supervisor: Int32
        var seconds: Double
        var sample: Double
        var settle: Double
        var maxGrowthKiB: Int
        var maxPeakKiB: Int
        var sayBytes: Int
        var floodLines: Int
        var scale: Int
        var json: Bool
    }

    /// What a client does, and how many of each run at once (times `--scale`).
    enum Kind: Int, CaseIterable {
        case slow, stalled, flood, churn, halfClose, sayer, listener, joins
        var name: String {
            switch self {
            case .slow: "slow-reader"
            case .stalled: "stalled"
            case .flood: "flood"
            case .churn: "churn"
            case .halfClose: "half-close"
            case .sayer: "huge-say"
            case .listener: "listener"
            case .joins: "join-leave"
            }
        }
        var clients: Int {
            switch self {
            case .slow: 4
            case .stalled: 2
            case .flood: 2
            case .churn: 6
            case .halfClose: 3
            case .sayer: 1
            case .listener: 4
            case .joins: 2
            }
        }
    }

    /// Per kind: what happened.
    struct Tally {
        var sessions = 0
        var replies = 0
        /// Replies with an error where none was expected (the huge says' refusals are
        /// counted apart, as `refused`).
        var errorReplies = 0
        var refused = 0
        /// Connections the server closed where that is allowed (a stalled reader past
        /// the output limit).
        var dropped = 0
        var nonJSON = 0
        var missing = 0
        var unexpectedClose = 0
        var connectFailures = 0
        var deliveries = 0
        var protocolErrors: Int { nonJSON + missing + unexpectedClose + connectFailures }
    }

    final class Client {
        let kind: Kind
        let slot: Int
        var fd: Int32 = -1
        let input = InBuffer(capacity: 65_536)
        let output = OutBuffer(capacity: 4096)
        var connected = false
        var welcomed = false
        var expected = 0
        var received = 0
        var deadline: UInt64 = .max
        var wantsWrite = false
        /// The epoll events registered now.
        var mask: UInt32 = 0
        /// For slow readers: when the next small read may happen.
        var nextRead: UInt64 = 0
        /// Stalled readers read nothing until then; sayers say again then.
        var holdUntil: UInt64 = 0
        var halfClosed = false
        var step = 0
        var variant = 0
        var restartAt: UInt64 = 0
        var lastError = ""
        init(kind: Kind, slot: Int) { self.kind = kind; self.slot = slot }
    }

    private let config: Config
    private let poller: Poller
    private var clients: [Client] = []
    private var tallies = [Tally](repeating: Tally(), count: Kind.allCases.count)
    private var stopping = false
    private var says = 0            // says answered OK
    private var sayPlain: [UInt8] = []
    private var sayEscaped: [UInt8] = []
    private var examples: [String] = []
    private var exampleCounts = [Int](repeating: 0, count: Kind.allCases.count)
    private let blob32k = [UInt8](repeating: UInt8(ascii: "b"), count: 32 * 1024)
    private let blob256k = [UInt8](repeating: UInt8(ascii: "s"), count: 256 * 1024)
    /// Control bytes, six times their size once JSON-escaped: 128 KiB is 768 KiB encoded,
    /// within the default maxStickyParamValueBytes (1,000,000, counted encoded).
    private let blob128kControl = [UInt8](repeating: 0x01, count: 128 * 1024)

    init(_ config: Config) throws {
        self.config = config
        poller = try Poller()
        // A huge say: `sayBytes` of printable text, and one in four with 5% control bytes,
        // shorter so that it is as long once JSON-escaped (`\u0001`, six bytes each).
        sayPlain = Array("say soakSay ".utf8)
        sayEscaped = sayPlain
        for i in 0..<config.sayBytes { sayPlain.append(UInt8(ascii: "a") + UInt8(i % 26)) }
        for i in 0..<(config.sayBytes * 4 / 5) {
            sayEscaped.append(i % 20 == 0 ? 0x01 : UInt8(ascii: "a") + UInt8(i % 26))
        }
        sayPlain += [0x0D, 0x0A]
        sayEscaped += [0x0D, 0x0A]
    }

    // MARK: run

    func run() throws -> Int32 {
        let start = Clock.nanos()
        let exe = Self.executable(config.supervisor)
        guard exe != nil else { throw BenchError.usage("no process \(config.supervisor) (is it the supervisor's pid?)") }
        var workers = Self.workers(of: config.supervisor, exe: exe)
        guard !workers.isEmpty else { throw BenchError.failure("process \(config.supervisor) has no worker children") }
        let initialPids = Set(workers)
        var seenPids = initialPids
        let idleBefore = rssByPid(workers)

        print("soak: \(Format.fixed(config.seconds, 0)) s against \(config.endpoint), supervisor \(config.supervisor), workers \(workers.map(String.init).joined(separator: ","))")
        print("soak: idle RSS before: " + idleBefore.map { "\($0.key)=\(mib($0.value))" }.sorted().joined(separator: " ") + " MiB")
        print("  time  workers RSS MiB (pid=RSS)                 sessions    replies  errors  restarts")

        var slot = 0
        for kind in Kind.allCases {
            for _ in 0..<(kind.clients * config.scale) {
                clients.append(Client(kind: kind, slot: slot))
                slot += 1
            }
        }
        for c in clients { begin(c, now: start) }

        let end = start + UInt64(config.seconds * 1e9)
        let sampleEvery = UInt64(config.sample * 1e9)
        var nextSample = start + sampleEvery
        var samples: [(t: Double, rss: [Int32: Int])] = []
        var restarts = 0
        var supervisorGone = false

        while true {
            let now = Clock.nanos()
            if now >= end { break }
            poller.wait(timeoutMs: 10) { token, events in
                let c = clients[token]
                guard c.fd >= 0 else { return }
                if events & pollOut != 0 { writable(c, now: Clock.nanos()) }
                if c.fd >= 0 && events & (pollIn | pollErr) != 0 { readable(c, now: Clock.nanos(), events: events) }
            }
            let after = Clock.nanos()
            for c in clients { tick(c, now: after) }
            if after >= nextSample {
                nextSample += sampleEvery
                if Self.executable(config.supervisor) == nil { supervisorGone = true; break }
                workers = Self.workers(of: config.supervisor, exe: exe)
                let fresh = Set(workers).subtracting(seenPids)
                restarts += fresh.count
                seenPids.formUnion(fresh)
                let rss = rssByPid(workers)
                let t = Double(after - start) / 1e9
                samples.append((t, rss))
                printRow(t, rss, restarts)
            }
        }

        // Stop: close everything, let the workers settle, sample once more.
        stopping = true
        for c in clients { close(c) }
        let settleEnd = Clock.nanos() + UInt64(config.settle * 1e9)
        while Clock.nanos() < settleEnd { usleep(100_000) }
        if Self.executable(config.supervisor) == nil { supervisorGone = true }
        workers = Self.workers(of: config.supervisor, exe: exe)
        let fresh = Set(workers).subtracting(seenPids)
        restarts += fresh.count
        let idleAfter = rssByPid(workers)
        return report(idleBefore: idleBefore, idleAfter: idleAfter, samples: samples, restarts: restarts,
                      supervisorGone: supervisorGone, elapsed: Double(Clock.nanos() - start) / 1e9)
    }

    // MARK: clients

    /// Opens a connection for the client's next session.
    private func begin(_ c: Client, now: UInt64) {
        guard !stopping else { return }
        c.input.consume(c.input.readable)
        c.output.consume(c.output.pending)
        c.connected = false
        c.welcomed = false
        c.expected = 0
        c.received = 0
        c.halfClosed = false
        c.step = 0
        c.deadline = now + 20_000_000_000   // connect + welcome + whatever follows
        tallies[c.kind.rawValue].sessions += 1
        do {
            c.fd = try config.endpoint.startConnect()
        } catch {
            tallies[c.kind.rawValue].connectFailures += 1
            note(c, "connect failed: \(error)")
            c.fd = -1
            c.restartAt = now + 500_000_000
            return
        }
        c.wantsWrite = true
        c.mask = pollIn | pollOut
        poller.add(c.fd, c.mask, token: index(of: c))
    }

    private func index(of c: Client) -> Int { c.slot }

    private func close(_ c: Client) {
        guard c.fd >= 0 else { return }
        poller.remove(c.fd)
        Glibc.close(c.fd)
        c.fd = -1
    }

    /// Ends a session; the client starts another one right away (or after `delay`).
    private func finish(_ c: Client, now: UInt64, delay: UInt64 = 0) {
        close(c)
        c.restartAt = now + delay
    }

    private func send(_ c: Client, _ bytes: [UInt8], expect replies: Int) {
        c.output.append(bytes)
        c.expected += replies
        flush(c)
    }

    private func send(_ c: Client, _ text: String, expect replies: Int) {
        send(c, Array(text.utf8), expect: replies)
    }

    private func flush(_ c: Client) {
        guard c.fd >= 0 else { return }
        if !c.output.flush(to: c.fd) {
            // The server closed it (EPIPE, ECONNRESET): judged like a close seen by a read.
            closedByServer(c, now: Clock.nanos())
            return
        }
        c.wantsWrite = c.output.pending > 0
        updateInterest(c, now: Clock.nanos())
        if !c.wantsWrite && c.kind == .halfClose && c.welcomed && !c.halfClosed && c.expected > 0 {
            c.halfClosed = true
            shutdown(c.fd, Int32(SHUT_WR))
        }
    }

    /// Whether the client reads when the socket is readable: slow readers read on a timer,
    /// stalled ones not at all while they hold. (Level-triggered epoll would spin otherwise.)
    private func readsOnEvents(_ c: Client, now: UInt64) -> Bool {
        guard c.welcomed else { return true }
        if c.kind == .slow { return false }
        if c.kind == .stalled && now < c.holdUntil { return false }
        return true
    }

    private func updateInterest(_ c: Client, now: UInt64) {
        guard c.fd >= 0 else { return }
        let mask = (readsOnEvents(c, now: now) ? pollIn : 0) | (c.wantsWrite || !c.connected ? pollOut : 0)
        if mask != c.mask {
            c.mask = mask
            poller.modify(c.fd, mask, token: index(of: c))
        }
    }

    private func writable(_ c: Client, now: UInt64) {
        if !c.connected {
            var err: Int32 = 0
            var len = socklen_t(MemoryLayout<Int32>.size)
            _ = getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len)
            if err != 0 {
                tallies[c.kind.rawValue].connectFailures += 1
                note(c, "connect failed: \(errnoText(err))")
                finish(c, now: now, delay: 500_000_000)
                return
            }
            c.connected = true
            // Churn: one in four sessions hangs up before the welcome line.
            if c.kind == .churn && c.variant % 4 == 3 { c.variant += 1; finish(c, now: now, delay: 10_000_000); return }
        }
        flush(c)
    }

    private func readable(_ c: Client, now: UInt64, events: UInt32) {
        if !c.connected { writable(c, now: now) ; if c.fd < 0 { return } }
        // Slow readers take a little at a time; stalled ones nothing until they drain. An
        // error or hang-up is read at once (it would be reported again and again).
        if !readsOnEvents(c, now: now) && events & pollErr == 0 { return }
        readAndHandle(c, now: now, max: readsOnEvents(c, now: now) ? Int.max : 16_384)
    }

    private func readAndHandle(_ c: Client, now: UInt64, max: Int) {
        var budget = max
        while c.fd >= 0 && budget > 0 {
            let n = c.input.read(from: c.fd, max: budget)
            if n == -1 { break }
            if n == 0 || n == -2 { closedByServer(c, now: now); return }
            budget -= n
            while c.fd >= 0, let line = c.input.nextLine() { handle(c, line, now: now) }
            if max != Int.max { break }
        }
    }

    private func closedByServer(_ c: Client, now: UInt64) {
        let t = c.kind.rawValue
        if c.kind == .halfClose && c.halfClosed && c.received >= c.expected {
            finish(c, now: now)   // the reply, then the close: as it should be
        } else if c.kind == .stalled {
            tallies[t].dropped += 1
            finish(c, now: now)
        } else if c.kind == .churn && c.expected == 0 {
            finish(c, now: now)
        } else {
            unexpectedClose(c, "closed by the server with \(c.received) of \(c.expected) replies (\(c.welcomed ? "after" : "before") the welcome)")
        }
    }

    private func unexpectedClose(_ c: Client, _ why: String) {
        tallies[c.kind.rawValue].unexpectedClose += 1
        note(c, why)
        finish(c, now: Clock.nanos(), delay: 100_000_000)
    }

    /// Keeps the first few examples of what went wrong, at most three per kind.
    private func note(_ c: Client, _ text: String) {
        exampleCounts[c.kind.rawValue] += 1
        if exampleCounts[c.kind.rawValue] <= 3 { examples.append("\(c.kind.name) #\(c.slot): \(text)") }
    }

    /// One line from the server: it must be a JSON object.
    private func handle(_ c: Client, _ raw: UnsafeBufferPointer<UInt8>, now: UInt64) {
        let t = c.kind.rawValue
        var line = raw
        if let last = line.last, last == 0x0D { line = UnsafeBufferPointer(rebasing: line.dropLast()) }
        guard case .object(let object)? = try? JSONParser.parse(UnsafeRawBufferPointer(line)) else {
            tallies[t].nonJSON += 1
            note(c, "not JSON: " + String(decoding: line.prefix(120), as: UTF8.self))
            return
        }
        let context = object["context"]?.stringValue
        if !c.welcomed {
            guard object["welcome"] != nil else {
                tallies[t].nonJSON += 1
                note(c, "first line is not the welcome: " + String(decoding: line.prefix(120), as: UTF8.self))
                return
            }
            c.welcomed = true
            welcomed(c, now: now)
            updateInterest(c, now: now)
            return
        }
        switch context {
        case "response":
            c.received += 1
            tallies[t].replies += 1
            let failed = object["error"] != nil || (object["status"]?.stringValue).map { $0 != "OK" } ?? false
            if failed {
                if c.kind == .sayer && c.step == 2 {
                    tallies[t].refused += 1
                    note(c, "huge say refused: " + String(decoding: line.prefix(160), as: UTF8.self))
                } else {
                    tallies[t].errorReplies += 1
                    note(c, "error reply: " + String(decoding: line.prefix(160), as: UTF8.self))
                }
            }
            if !failed && c.kind == .sayer && c.step == 2 { says += 1 }
            if c.received == c.expected { allAnswered(c, now: now) }
        case "user":
            tallies[t].deliveries += 1
        default:
            break   // a goodbye, a keep-alive
        }
    }

    /// The welcome arrived: start the kind's requests.
    private func welcomed(_ c: Client, now: UInt64) {
        c.deadline = now + 20_000_000_000
        switch c.kind {
        case .slow:
            // 32 KiB param, then 16 replies of it (512 KiB, under maxOutputBytes), read slowly.
            send(c, Array("paramAdd blob=".utf8) + blob32k + [0x0D, 0x0A], expect: 1)
            send(c, String(repeating: "paramView blob\r\n", count: 16), expect: 16)
            c.nextRead = now
        case .stalled:
            // In the huge says' room; 16 replies of 256 KiB (4 MiB, past maxOutputBytes; every
            // other session of control bytes, six times that once JSON-escaped); nothing read
            // for 3 s.
            c.variant += 1
            send(c, "roomAdd soakSay\r\n", expect: 1)
            send(c, Array("paramAdd blob=".utf8) + (c.variant % 2 == 0 ? blob128kControl : blob256k) + [0x0D, 0x0A], expect: 1)
            send(c, String(repeating: "paramsView\r\n", count: 16), expect: 16)
            c.holdUntil = now + 3_000_000_000
            c.deadline = c.holdUntil + 20_000_000_000
        case .flood:
            // A pipelined burst in one write, read as fast as it comes.
            var seed = UInt64(truncatingIfNeeded: now) | 1
            seed ^= seed << 13; seed ^= seed >> 7; seed ^= seed << 17
            let lines = config.floodLines / 4 + Int(seed % UInt64(config.floodLines - config.floodLines / 4 + 1))
            var burst: [UInt8] = []
            burst.reserveCapacity(lines * 16)
            for i in 0..<lines {
                burst += i % 2 == 0 ? Array("paramAdd f=\(i)\r\n".utf8) : Array("paramView f\r\n".utf8)
            }
            send(c, burst, expect: lines)
        case .churn:
            c.variant += 1
            switch c.variant % 4 {
            case 1: finish(c, now: now, delay: 10_000_000)              // hang up after the welcome
            case 2: send(c, "detailsView\r\n", expect: 0); finish(c, now: now, delay: 10_000_000)  // ask, do not wait
            default: send(c, "detailsView\r\n", expect: 1)
            }
        case .halfClose:
            c.variant += 1
            let requests = ["roomView", "randomNumber", "{\"action\":\"cacheTest\",\"params\":{\"key\":\"soak\(c.slot)\",\"value\":\"v\"}}",
                            "detailsView", "paramsView", "roomView defaultRoom"]
            c.deadline = now + 10_000_000_000
            send(c, requests[c.variant % requests.count] + "\r\n", expect: 1)   // then SHUT_WR (flush)
        case .sayer, .listener:
            c.step = 1
            send(c, "roomAdd soakSay\r\n", expect: 1)
        case .joins:
            c.step = 0
            joinBatch(c)
        }
    }

    private func joinBatch(_ c: Client) {
        var text = ""
        for k in 0..<20 {
            let room = "soakj-\(c.slot)-\(tallies[c.kind.rawValue].sessions)-\(c.step)-\(k)"
            text += "roomAdd \(room)\r\nroomLeave \(room)\r\n"
        }
        c.step += 1
        c.deadline = Clock.nanos() + 20_000_000_000
        send(c, text, expect: 40)
    }

    /// Every request the client waited for was answered.
    private func allAnswered(_ c: Client, now: UInt64) {
        switch c.kind {
        case .slow, .stalled:
            finish(c, now: now)
        case .churn:
            finish(c, now: now, delay: 10_000_000)
        case .flood:
            finish(c, now: now, delay: 250_000_000)   // bursts, not a throughput test
        case .halfClose:
            c.deadline = now + 5_000_000_000   // now the close must follow
        case .listener:
            c.deadline = .max
        case .sayer:
            c.step = 2
            c.deadline = .max
            c.holdUntil = now + 1_000_000_000
        case .joins:
            if c.step < 10 { joinBatch(c) } else { finish(c, now: now) }
        }
    }

    /// Timers: restarts, slow reads, the stalled readers' drain, says, deadlines.
    private func tick(_ c: Client, now: UInt64) {
        if c.fd < 0 {
            if !stopping && now >= c.restartAt { begin(c, now: now) }
            return
        }
        if c.kind == .slow && c.welcomed && now >= c.nextRead {
            c.nextRead = now + 50_000_000
            readAndHandle(c, now: now, max: 16_384)
        }
        if c.fd >= 0 && c.kind == .stalled && c.welcomed && now >= c.holdUntil && c.mask & pollIn == 0 {
            updateInterest(c, now: now)   // the hold is over: drain
        }
        if c.fd >= 0 && c.kind == .sayer && c.step == 2 && c.received == c.expected && now >= c.holdUntil {
            c.deadline = now + 20_000_000_000
            send(c, (tallies[c.kind.rawValue].sessions + says) % 4 == 3 ? sayEscaped : sayPlain, expect: 1)
            c.holdUntil = .max
        }
        if c.fd >= 0 && now > c.deadline {
            let missing = max(1, c.expected - c.received)
            if c.kind == .halfClose && c.received >= c.expected {
                tallies[c.kind.rawValue].missing += 1
                note(c, "no close within 5 s after the reply to a half-closed request")
            } else {
                tallies[c.kind.rawValue].missing += missing
                note(c, "\(c.welcomed ? "" : "no welcome; ")\(c.received) of \(c.expected) replies within the deadline")
            }
            finish(c, now: now)
        }
    }

    // MARK: workers

    /// The executable of `pid`, or nil when there is no such process.
    static func executable(_ pid: Int32) -> String? {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/\(pid)/exe", &buffer, buffer.count - 1)
        guard n > 0 else { return kill(pid, 0) == 0 ? "" : nil }
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The children of `parent` that run the same executable (its workers, not a private
    /// redis-server), from /proc/<pid>/stat.
    static func workers(of parent: Int32, exe: String?) -> [Int32] {
        guard let dir = opendir("/proc") else { return [] }
        defer { closedir(dir) }
        var found: [Int32] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            guard let pid = Int32(name), let stat = Idle.readFile("/proc/\(pid)/stat"),
                  let close = stat.lastIndex(of: ")") else { continue }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            guard fields.count > 2, Int32(fields[1]) == parent else { continue }
            if let exe, !exe.isEmpty, executable(pid) != exe { continue }
            found.append(pid)
        }
        return found.sorted()
    }

    private func rssByPid(_ pids: [Int32]) -> [Int32: Int] {
        var result: [Int32: Int] = [:]
        for pid in pids { if let kib = try? Idle.rssKiB([pid]) { result[pid] = kib } }
        return result
    }

    private func mib(_ kib: Int) -> String { Format.fixed(Double(kib) / 1024, 1) }

    private func printRow(_ t: Double, _ rss: [Int32: Int], _ restarts: Int) {
        let total = tallies.reduce(into: Tally()) { sum, x in
            sum.sessions += x.sessions; sum.replies += x.replies
            sum.errorReplies += x.errorReplies; sum.nonJSON += x.nonJSON; sum.missing += x.missing
            sum.unexpectedClose += x.unexpectedClose; sum.connectFailures += x.connectFailures
        }
        let workers = rss.sorted { $0.key < $1.key }.map { "\($0.key)=\(mib($0.value))" }.joined(separator: " ")
        print(Format.fixed(t, 0).leftPadded(6) + "  " + workers.padding(to: 42)
              + String(total.sessions).leftPadded(9) + String(total.replies).leftPadded(11)
              + String(total.protocolErrors + total.errorReplies).leftPadded(8) + String(restarts).leftPadded(10))
    }

    // MARK: result

    private func report(idleBefore: [Int32: Int], idleAfter: [Int32: Int], samples: [(t: Double, rss: [Int32: Int])],
                        restarts: Int, supervisorGone: Bool, elapsed: Double) -> Int32 {
        print("")
        print("kind".padding(to: 12) + "sessions".leftPadded(9) + "replies".leftPadded(10) + "deliver".leftPadded(9)
              + "err-rep".leftPadded(8) + "refused".leftPadded(8) + "dropped".leftPadded(8) + "non-JSON".leftPadded(9)
              + "missing".leftPadded(8) + "closed".leftPadded(7) + "connect".leftPadded(8))
        var total = Tally()
        for kind in Kind.allCases {
            let x = tallies[kind.rawValue]
            print(kind.name.padding(to: 12) + String(x.sessions).leftPadded(9) + String(x.replies).leftPadded(10)
                  + String(x.deliveries).leftPadded(9) + String(x.errorReplies).leftPadded(8) + String(x.refused).leftPadded(8)
                  + String(x.dropped).leftPadded(8) + String(x.nonJSON).leftPadded(9) + String(x.missing).leftPadded(8)
                  + String(x.unexpectedClose).leftPadded(7) + String(x.connectFailures).leftPadded(8))
            total.sessions += x.sessions; total.replies += x.replies; total.deliveries += x.deliveries
            total.errorReplies += x.errorReplies; total.refused += x.refused; total.dropped += x.dropped
            total.nonJSON += x.nonJSON; total.missing += x.missing; total.unexpectedClose += x.unexpectedClose
            total.connectFailures += x.connectFailures
        }
        let listeners = Kind.listener.clients * config.scale
        let expectedDeliveries = says * listeners
        print("huge says answered OK: \(says), each to \(listeners) listeners: \(expectedDeliveries) deliveries expected, \(tallies[Kind.listener.rawValue].deliveries) received")
        for e in examples { print("  e.g. " + e) }

        // RSS: idle after vs idle before, and the last sample under load vs the first.
        var growthIdle = 0
        var growthLoad = 0
        var peak = 0
        for (pid, before) in idleBefore {
            if let after = idleAfter[pid] { growthIdle = max(growthIdle, after - before) }
        }
        if let first = samples.first, let last = samples.last, samples.count >= 2 {
            for (pid, a) in first.rss { if let b = last.rss[pid] { growthLoad = max(growthLoad, b - a) } }
        }
        var peakOver = 0
        for s in samples {
            for (pid, v) in s.rss {
                peak = max(peak, v)
                peakOver = max(peakOver, v - (idleBefore[pid] ?? v))
            }
        }
        print("RSS MiB per worker: idle before " + idleBefore.sorted { $0.key < $1.key }.map { mib($0.value) }.joined(separator: "/")
              + ", peak \(mib(peak)), idle after " + idleAfter.sorted { $0.key < $1.key }.map { mib($0.value) }.joined(separator: "/")
              + "; growth idle→idle \(mib(growthIdle)), first→last sample \(mib(growthLoad)) (bound \(mib(config.maxGrowthKiB))), peak over idle \(mib(peakOver)) (bound \(mib(config.maxPeakKiB)))")

        var reasons: [String] = []
        if supervisorGone { reasons.append("the supervisor exited") }
        if restarts > 0 { reasons.append("\(restarts) worker restart(s)") }
        if total.protocolErrors > 0 {
            reasons.append("\(total.protocolErrors) protocol error(s) (non-JSON \(total.nonJSON), missing replies \(total.missing), unexpected closes \(total.unexpectedClose), failed connects \(total.connectFailures))")
        }
        if total.errorReplies > 0 { reasons.append("\(total.errorReplies) unexpected error replies") }
        if growthIdle > config.maxGrowthKiB || growthLoad > config.maxGrowthKiB { reasons.append("RSS grew past the bound") }
        if peakOver > config.maxPeakKiB { reasons.append("RSS peaked past the bound") }
        if says == 0 { reasons.append("no huge say was answered") }
        let verdict = reasons.isEmpty ? "PASS" : "FAIL"
        if config.json {
            var r = Report(mode: "soak")
            r.add("verdict", verdict)
            r.add("seconds", number: Format.fixed(elapsed, 0))
            r.add("sessions", total.sessions)
            r.add("replies", total.replies)
            r.add("restarts", restarts)
            r.add("protocol_errors", total.protocolErrors)
            r.add("error_replies", total.errorReplies)
            r.add("rss_peak", peak)
            r.add("rss_growth_idle", growthIdle)
            r.add("rss_growth_load", growthLoad)
            print(r.render(json: true, units: ["rss_peak": "KiB", "rss_growth_idle": "KiB", "rss_growth_load": "KiB"]))
        }
        print("soak \(verdict): \(Format.fixed(elapsed, 0)) s, \(total.sessions) sessions, \(total.replies) replies, restarts=\(restarts), protocol_errors=\(total.protocolErrors), error_replies=\(total.errorReplies), rss_growth=\(mib(max(growthIdle, growthLoad))) MiB"
              + (reasons.isEmpty ? "" : " — " + reasons.joined(separator: "; ")))
        return reasons.isEmpty ? 0 : 1
    }
}

extension String {
    func leftPadded(_ width: Int) -> String {
        count >= width ? " " + self : String(repeating: " ", count: width - count) + self
    }
}
