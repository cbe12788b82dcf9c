import Foundation
import Glibc
import Testing
@testable import HeraldTestSupport

/// Issue 12, logs and process management: SIGUSR1 reopens the log (logrotate), the JSON
/// log format, and systemd's notify protocol, with the real binary.
@Suite("Logs and systemd", .serialized)
struct LogsAndSystemdTests {
    static func options(workers: Int, redis: RedisServer, _ extra: [String]) -> HeraldOptions {
        var options = ClusterTests.options(workers: workers, redis: redis)
        options.logLevel = "info"
        options.extraArguments += extra
        return options
    }

    static func lines(_ path: String) -> [String] {
        ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }

    /// Polls `condition` every 50 ms until it holds.
    static func eventually(_ timeout: Double, _ what: String, _ condition: () -> Bool) throws {
        let deadline = Deadline(timeout)
        while !deadline.passed {
            if condition() { return }
            usleep(50_000)
        }
        throw HarnessError.timeout(what)
    }

    @Test("SIGUSR1 to the supervisor: it and every worker write to a new file at the log's path")
    func usr1ReopensLog() throws {
        let redis = try RedisServer()
        defer { redis.stop() }
        try withHerald(Self.options(workers: 2, redis: redis, ["--log", "herald.log"])) { server in
            let path = server.directory.appendingPathComponent("herald.log").path
            let rotated = path + ".1"
            try Self.eventually(5, "both workers log to \(path)") {
                Self.lines(path).filter { $0.contains("event=server.start") }.count == 2
            }
            // What logrotate does: rename, then signal the supervisor (from the pidfile).
            #expect(rename(path, rotated) == 0)
            server.process.signal(SIGUSR1)
            try Self.eventually(5, "the supervisor and both workers reopen the log") {
                let reopened = Self.lines(path).filter { $0.contains("event=log.reopened") }
                return reopened.contains { $0.contains("role=supervisor") }
                    && reopened.contains { $0.contains("worker=0") } && reopened.contains { $0.contains("worker=1") }
            }
            let oldCount = Self.lines(rotated).count
            // Traffic: connections on both workers (the kernel spreads them by address).
            for _ in 0..<24 {
                let (client, _) = try server.connectWelcomed()
                client.close()
            }
            try Self.eventually(5, "both workers log new connections to the new file") {
                let opens = Self.lines(path).filter { $0.contains("event=connection.open") }
                return opens.count == 24 && opens.contains { $0.contains("worker=0") } && opens.contains { $0.contains("worker=1") }
            }
            #expect(Self.lines(rotated).count == oldCount, "nothing more went to the rotated file")
            #expect(!Self.lines(rotated).contains { $0.contains("event=log.reopened") })
            try server.requireServing("after the log reopen")
        }
    }

    @Test("--log-format json: every line of a run is one JSON object with time, level, event and the fields")
    func jsonLogFormat() throws {
        let redis = try RedisServer()
        defer { redis.stop() }
        var path = ""
        try withHerald(Self.options(workers: 2, redis: redis, ["--log", "herald.log", "--log-format", "json"])) { server in
            path = server.directory.appendingPathComponent("herald.log").path
            for _ in 0..<4 {
                let (client, _) = try server.connectWelcomed()
                try client.send(#"{"action":"no \"such\"\taction"}"#)
                _ = try client.readLine()
                client.close()
            }
            try Self.eventually(5, "connection lines in the log") {
                Self.lines(path).filter { $0.contains(#""event":"connection.close""#) }.count >= 4
            }
            server.signal(SIGTERM)
            _ = server.process.waitForExit(timeout: 10)
            let lines = Self.lines(path)
            #expect(lines.count >= 10)
            var events: Set<String> = []
            for line in lines {
                let object: JSON
                do { object = try JSON.parse(line) } catch {
                    Issue.record("not JSON: \(line) (\(error))")
                    continue
                }
                guard case .object(let members) = object else { Issue.record("not an object: \(line)"); continue }
                #expect(Array(members.prefix(3).map(\.key)) == ["time", "level", "event"], "\(line)")
                let time = object["time"]?.stringValue ?? ""
                #expect(time.count == 24 && time.hasSuffix("Z") && time.dropFirst(10).first == "T", "time: \(line)")
                #expect(["debug", "info", "warn", "error"].contains(object["level"]?.stringValue ?? ""), "\(line)")
                #expect(members.allSatisfy { if case .string = $0.value { true } else { false } }, "\(line)")
                let event = object["event"]?.stringValue ?? ""
                events.insert(event)
                // Every line says who wrote it.
                #expect(object["role"]?.stringValue == "supervisor" || object["worker"]?.stringValue != nil, "\(line)")
                if event == "connection.open" { #expect(object["remote"]?.stringValue?.hasPrefix("127.0.0.1:") == true) }
            }
            for event in ["cluster.start", "worker.ready", "server.start", "connection.open", "connection.close",
                          "cluster.stopping", "cluster.stopped"] {
                #expect(events.contains(event), "a \(event) line")
            }
        }
    }

    @Test("NOTIFY_SOCKET: READY=1 once the workers serve, RELOADING=1/READY=1 around a reload, STOPPING=1")
    func systemdNotify() throws {
        let redis = try RedisServer()
        defer { redis.stop() }
        // An abstract-namespace address (systemd's own form is a path; both are handled).
        let name = "herald-notify-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let receiver = try NotifyReceiver(abstractName: name)
        defer { receiver.close() }
        var options = Self.options(workers: 2, redis: redis, ["--log", "herald.log", "--log-format", "json"])
        options.environment["NOTIFY_SOCKET"] = "@" + name
        try withHerald(options) { server in
            let path = server.directory.appendingPathComponent("herald.log").path
            func serverStarts() -> [(pid: String, ms: Int64)] {
                Self.lines(path).compactMap { line in
                    guard let object = try? JSON.parse(line), object["event"]?.stringValue == "server.start",
                          let pid = object["pid"]?.stringValue, let ms = Self.millis(object["time"]?.stringValue) else { return nil }
                    return (pid, ms)
                }
            }
            try Self.eventually(10, "READY=1") { receiver.messages.count >= 1 }
            let ready = receiver.messages[0]
            #expect(ready.text.hasPrefix("READY=1\n"), "\(ready.text)")
            // A worker's lines reach the file at the end of its loop iteration, which may
            // be after READY=1: wait for them, then compare the times they were logged.
            try Self.eventually(5, "both workers' server.start lines") { serverStarts().count == 2 }
            let first = serverStarts()
            for start in first { #expect(start.ms <= ready.ms, "a worker served \(start.ms - ready.ms) ms after READY=1") }
            // The workers do not inherit NOTIFY_SOCKET (they would notify as well).
            for pid in WorkerMemory.workerPids(of: server) {
                let environ = (try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/environ"))) ?? Data()
                #expect(!String(decoding: environ, as: UTF8.self).contains("NOTIFY_SOCKET"), "worker \(pid)")
            }

            let reload = try ClusterTests.cli(server, ["reload"])
            #expect(reload.status == .exited(0), "\(reload.stderr)")
            try Self.eventually(20, "READY=1 after the reload") { receiver.messages.count >= 3 }
            let reloading = receiver.messages[1], reloaded = receiver.messages[2]
            #expect(reloading.text.hasPrefix("RELOADING=1\nMONOTONIC_USEC="), "\(reloading.text)")
            let usec = reloading.text.split(separator: "\n").first { $0.hasPrefix("MONOTONIC_USEC=") }
                .flatMap { UInt64($0.dropFirst("MONOTONIC_USEC=".count)) } ?? 0
            var now = timespec()
            clock_gettime(CLOCK_MONOTONIC, &now)
            let nowUsec = UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1_000
            #expect(usec > 0 && usec <= nowUsec && nowUsec - usec < 30_000_000, "MONOTONIC_USEC=\(usec), now \(nowUsec)")
            #expect(reloaded.text.hasPrefix("READY=1\n"), "\(reloaded.text)")
            func fresh() -> [(pid: String, ms: Int64)] { serverStarts().filter { start in !first.contains { $0.pid == start.pid } } }
            try Self.eventually(5, "the two new workers' server.start lines") { fresh().count == 2 }
            for start in fresh() {
                #expect(reloading.ms <= start.ms + 1, "RELOADING=1 came before the new worker")
                #expect(start.ms <= reloaded.ms, "READY=1 came \(start.ms - reloaded.ms) ms before a new worker served")
            }
            try server.requireServing("after the reload")

            server.signal(SIGTERM)
            try Self.eventually(10, "STOPPING=1") { receiver.messages.count >= 4 }
            #expect(receiver.messages[3].text.hasPrefix("STOPPING=1"), "\(receiver.messages[3].text)")
            #expect(server.process.waitForExit(timeout: 10) == .exited(0))
            usleep(200_000)
            #expect(receiver.messages.count == 4, "nothing else notified: \(receiver.messages.map(\.text))")
        }
    }

    @Test("herald version and --version: the version and the Swift it was built with; a bad --log-format exits 2")
    func versionAndBadFormat() throws {
        let version = try runHerald(["version"])
        #expect(version.status == .exited(0))
        let line = version.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let words = line.split(separator: " ")
        #expect(words.first == "herald" && words.count > 1 && words[1].split(separator: ".").count == 3, "\(line)")
        #expect(line.contains("(Swift 6."), "\(line)")
        let dashed = try runHerald(["--version"])
        #expect(dashed.stdout == version.stdout)
        let bad = try runHerald(["start", "--port", "0", "--log-format", "xml"])
        #expect(bad.status == .exited(2))
        #expect(bad.stderr.contains("logFormat must be text or json"), "\(bad.stderr)")
    }

    /// `2026-12-01T22:30:00.123Z` as milliseconds since the epoch.
    static func millis(_ text: String?) -> Int64? {
        guard let text, text.count == 24 else { return nil }
        let chars = Array(text)
        func number(_ from: Int, _ count: Int) -> Int32? { Int32(String(chars[from..<(from + count)])) }
        guard let year = number(0, 4), let month = number(5, 2), let day = number(8, 2), let hour = number(11, 2),
              let minute = number(14, 2), let second = number(17, 2), let ms = number(20, 3) else { return nil }
        var parts = tm()
        parts.tm_year = year - 1900; parts.tm_mon = month - 1; parts.tm_mday = day
        parts.tm_hour = hour; parts.tm_min = minute; parts.tm_sec = second
        return Int64(timegm(&parts)) * 1_000 + Int64(ms)
    }
}

/// The service manager's end of NOTIFY_SOCKET: a unix datagram socket (abstract
/// namespace) and the messages it received, each with the wall-clock time it came.
final class NotifyReceiver: @unchecked Sendable {
    struct Message { let text: String; let ms: Int64 }
    private let fd: Int32
    private let lock = NSLock()
    private var received: [Message] = []
    private var thread: Thread?
    private var closed = false

    init(abstractName: String) throws {
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw HarnessError.system("socket", errno) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = [UInt8(0)] + Array(abstractName.utf8)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        let length = socklen_t(MemoryLayout<sockaddr_un>.offset(of: \.sun_path)! + bytes.count)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        guard bound == 0 else { Glibc.close(fd); throw HarnessError.system("bind @\(abstractName)", errno) }
        var timeout = timeval(tv_sec: 0, tv_usec: 100_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let thread = Thread { [self] in self.receive() }
        self.thread = thread
        thread.start()
    }

    var messages: [Message] { lock.withLock { received } }

    private func receive() {
        var buffer = [UInt8](repeating: 0, count: 4_096)
        while !lock.withLock({ closed }) {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n > 0 {
                let message = Message(text: String(decoding: buffer[0..<n], as: UTF8.self), ms: nowMs())
                lock.withLock { received.append(message) }
            }
        }
    }

    func close() {
        lock.withLock { closed = true }
        usleep(200_000)
        Glibc.close(fd)
    }
}
