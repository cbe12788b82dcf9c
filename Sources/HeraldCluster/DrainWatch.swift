/// When the supervisor kills a worker it told to stop. At the drain limit
/// (`pendingShutdownWaitLimit` + 5 s) a worker still running is killed, unless it is
/// still working through its connections (the `stopWork` it reports: connections plus
/// goodbyes not yet written): then it is looked at again every `checkInterval`, and
/// killed at the first look that finds no less work than the one before, or once
/// `maxExtension` has passed beyond the limit. A stuck worker goes at the limit, as
/// before; a slow but steady one (a million connections on two cores, where closing
/// 19,000 connections a worker takes tens of seconds) finishes its goodbyes instead of
/// having them cut off.
struct DrainWatch: Equatable {
    static let checkInterval = 5_000
    static let maxExtension = 60_000

    enum Decision: Equatable {
        case kill
        /// Look again after `checkInterval`.
        case extend
    }

    /// Monotonic ms when the worker was told to stop.
    let startedAt: Int
    /// ms after `startedAt` of the first look.
    let limit: Int
    /// Its work left at the previous look (at the start: when it was told to stop).
    private(set) var lastRemaining: Int

    init(startedAt: Int, limit: Int, remaining: Int) {
        self.startedAt = startedAt
        self.limit = limit
        self.lastRemaining = remaining
    }

    /// The decision at monotonic ms `now`, the worker reporting `remaining` work.
    mutating func check(now: Int, remaining: Int) -> Decision {
        defer { lastRemaining = remaining }
        let progressed = remaining < lastRemaining
        return progressed && now - startedAt < limit + Self.maxExtension ? .extend : .kill
    }

    /// The longest a stop can take before the last kill: the limit and every extension.
    static func longest(limit: Int) -> Int { limit + maxExtension + checkInterval }
}
