import Glibc
import HeraldLoop

/// The `connection.open` and `connection.close` log lines, bounded per second: up to
/// the worker's share of `connectionLogRate` (the host's rate over its workers) of each
/// a second are written one by one, as always; the rest of
/// that second's are counted, and one summary line a second says what they were:
///
///     event=connection.open.summary suppressed=18812 windowMs=1000
///     event=connection.close.summary suppressed=19900 messages=0 actions=0 client=0 goodbye=0 timeout=0 overflow=0 error=0 shutdown=19900 windowMs=1000
///
/// So a worker that closes 20,000 connections at once (a stop, the supervisor killed)
/// writes a few hundred lines, not 20,000 to a log file shared with 50 others; and
/// `grep connection.close` still finds every close (the summary's `messages=` and
/// `actions=` are the sums over the closes it stands for).
@LoopActor
final class ConnectionLog {
    private let rate: Int
    /// Monotonic ms when the current one-second window began.
    private var windowStart = 0
    private var opens = 0
    private var closes = 0
    private var suppressedOpens = 0
    private var suppressedCloses = 0
    private var suppressedMessages = 0
    private var suppressedActions = 0
    private var suppressedReasons = [Int](repeating: 0, count: CloseReason.allCases.count)
    private var summaryTimer: LoopTimer?

    init(rate: Int) {
        self.rate = rate
    }

    /// A worker's share of the host's `connectionLogRate`: the rate over the configured
    /// workers (0: one per core), at least 1 when the rate is not 0. With 50 workers and
    /// the default 100, two lines a second each: a connect storm of a million writes
    /// ~100 individual lines a second in all, not 5,000.
    static func share(of rate: Int, workers: Int) -> Int {
        guard rate > 0 else { return 0 }
        let count = workers > 0 ? workers : max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        return max(1, (rate + count - 1) / count)
    }

    func opened(_ connection: Connection, remote: @autoclosure () -> String) {
        roll()
        opens += 1
        if opens <= rate {
            log.info("connection.open", ["id": connection.id.string, "remote": remote()])
            return
        }
        suppressedOpens += 1
        scheduleSummary()
    }

    /// `fields` are the line's (`Worker.closeFields`); `connection.closeReason` is set.
    func closed(_ connection: Connection, _ fields: @autoclosure () -> KeyValuePairs<String, String>) {
        roll()
        closes += 1
        if closes <= rate {
            log.info("connection.close", fields())
            return
        }
        suppressedCloses += 1
        suppressedMessages += connection.messageCount
        suppressedActions += connection.totalActions
        suppressedReasons[connection.closeReason.rawValue] += 1
        scheduleSummary()
    }

    /// Writes the summaries of what was not logged so far (before the worker stops).
    func flush() {
        summaryTimer?.cancel()
        summaryTimer = nil
        writeSummaries()
        opens = 0
        closes = 0
        windowStart = Clock.monotonicMillis
    }

    /// Starts a new window once a second has passed, summing up the last.
    private func roll() {
        let now = Clock.monotonicMillis
        guard now - windowStart >= 1_000 else { return }
        writeSummaries()
        windowStart = now
        opens = 0
        closes = 0
    }

    /// The summary comes at the window's end even when no further connection event does.
    private func scheduleSummary() {
        guard summaryTimer == nil else { return }
        let wait = max(1, windowStart + 1_000 - Clock.monotonicMillis)
        summaryTimer = EventLoop.current.schedule(afterMilliseconds: wait) { [weak self] in
            guard let self else { return }
            self.summaryTimer = nil
            self.roll()
        }
    }

    private func writeSummaries() {
        let window = String(max(0, Clock.monotonicMillis - windowStart))
        if suppressedOpens > 0 {
            log.info("connection.open.summary", ["suppressed": String(suppressedOpens), "windowMs": window])
            suppressedOpens = 0
        }
        if suppressedCloses > 0 {
            let r = suppressedReasons
            log.info("connection.close.summary", [
                "suppressed": String(suppressedCloses), "messages": String(suppressedMessages),
                "actions": String(suppressedActions),
                CloseReason.client.label: String(r[CloseReason.client.rawValue]),
                CloseReason.goodbye.label: String(r[CloseReason.goodbye.rawValue]),
                CloseReason.timeout.label: String(r[CloseReason.timeout.rawValue]),
                CloseReason.overflow.label: String(r[CloseReason.overflow.rawValue]),
                CloseReason.error.label: String(r[CloseReason.error.rawValue]),
                CloseReason.shutdown.label: String(r[CloseReason.shutdown.rawValue]),
                "windowMs": window,
            ])
            suppressedCloses = 0
            suppressedMessages = 0
            suppressedActions = 0
            for index in suppressedReasons.indices { suppressedReasons[index] = 0 }
        }
    }
}
