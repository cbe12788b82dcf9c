import Foundation
import Glibc
@testable import HeraldTestSupport

/// Worker processes and their memory, read from /proc (never from the server's counters).
enum WorkerMemory {
    /// The pids of the supervisor's worker children (`herald worker …`).
    static func workerPids(of server: HeraldProcess) -> [pid_t] {
        let supervisor = server.process.pid
        var pids: [pid_t] = []
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
        for entry in entries {
            guard let pid = pid_t(entry),
                  let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { continue }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            guard fields.count > 2, pid_t(fields[1]) == supervisor else { continue }
            let cmdline = (try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/cmdline"))) ?? Data()
            let words = cmdline.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            if words.count > 1 && words[1] == "worker" { pids.append(pid) }
        }
        return pids.sorted()
    }

    /// VmRSS of `pid` in KiB (0 when it cannot be read).
    static func rssKiB(_ pid: pid_t) -> Int {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return 0 }
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            return Int(line.split(separator: " ", omittingEmptySubsequences: true)[1]) ?? 0
        }
        return 0
    }

    /// The single worker of a one-worker server (fails the test when there is not exactly one).
    static func onlyWorker(of server: HeraldProcess) throws -> pid_t {
        let deadline = Deadline(5)
        while true {
            let pids = workerPids(of: server)
            if pids.count == 1 { return pids[0] }
            if deadline.passed {
                throw HarnessError.mismatch("expected one worker process under supervisor \(server.process.pid), found \(pids)")
            }
            usleep(50_000)
        }
    }

    /// The largest RSS (MiB) of `pid` seen while `body` runs, sampled every 20 ms on a thread.
    static func peakRSSMiB(_ pid: pid_t, during body: () throws -> Void) rethrows -> Int {
        let peak = PeakSampler(pid: pid)
        peak.start()
        defer { peak.stop() }
        try body()
        return peak.value / 1024
    }
}

/// Samples a process's VmRSS on a background thread, keeping the maximum.
final class PeakSampler: @unchecked Sendable {
    private let pid: pid_t
    private let lock = NSLock()
    private var peak = 0
    private var running = true
    private var thread: Thread?

    init(pid: pid_t) { self.pid = pid }

    var value: Int { lock.lock(); defer { lock.unlock() }; return max(peak, WorkerMemory.rssKiB(pid)) }

    func start() {
        let thread = Thread { [self] in
            while true {
                lock.lock()
                let go = running
                lock.unlock()
                if !go { return }
                let now = WorkerMemory.rssKiB(pid)
                lock.lock(); peak = max(peak, now); lock.unlock()
                usleep(20_000)
            }
        }
        self.thread = thread
        thread.start()
    }

    func stop() {
        lock.lock(); running = false; lock.unlock()
        usleep(30_000)
    }
}

/// Sends `bytes` on another thread (so a test can read while a big burst goes out).
final class BackgroundSender: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    private let lock = NSLock()
    private var outcome: LineClient.SendOutcome?

    init(_ client: LineClient, _ bytes: [UInt8], timeout: Double) {
        let box = UncheckedBox(client)
        Thread { [self] in
            let result = box.value.trySend(bytes[...], timeout: timeout)
            lock.lock(); outcome = result; lock.unlock()
            done.signal()
        }.start()
    }

    /// Waits for the send to end; the outcome (nil: still sending after `timeout`).
    func wait(timeout: Double) -> LineClient.SendOutcome? {
        guard done.wait(timeout: .now() + timeout) == .success else { return nil }
        lock.lock(); defer { lock.unlock() }
        return outcome
    }
}

struct UncheckedBox<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
