/// A one-shot timer on the event loop.
public final class LoopTimer: @unchecked Sendable {
    let deadline: UInt64
    @exclusivity(unchecked) private var body: (@LoopActor () -> Void)?

    init(deadline: UInt64, body: @escaping @LoopActor () -> Void) {
        self.deadline = deadline
        self.body = body
    }

    /// Stops the timer from firing. Loop thread only.
    @LoopActor public func cancel() {
        guard body != nil else { return }
        body = nil
        EventLoop.current.timerCancelled()
    }

    @LoopActor public var isPending: Bool { body != nil }

    @LoopActor func fire() {
        let body = self.body
        self.body = nil
        body?()
    }
}

/// A binary min-heap of timers by deadline.
struct TimerHeap {
    private var items: [LoopTimer] = []

    var isEmpty: Bool { items.isEmpty }
    var count: Int { items.count }

    /// Drops every cancelled timer (a sorted array is a valid heap).
    @LoopActor
    mutating func removeCancelled() {
        items.removeAll { !$0.isPending }
        items.sort { $0.deadline < $1.deadline }
    }

    mutating func push(_ timer: LoopTimer) {
        items.append(timer)
        var child = items.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard items[child].deadline < items[parent].deadline else { break }
            items.swapAt(child, parent)
            child = parent
        }
    }

    mutating func popExpired(now: UInt64) -> LoopTimer? {
        guard let first = items.first, first.deadline <= now else { return nil }
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            var parent = 0
            while true {
                let left = 2 * parent + 1, right = left + 1
                var smallest = parent
                if left < items.count && items[left].deadline < items[smallest].deadline { smallest = left }
                if right < items.count && items[right].deadline < items[smallest].deadline { smallest = right }
                if smallest == parent { break }
                items.swapAt(parent, smallest)
                parent = smallest
            }
        }
        return first
    }

    /// Milliseconds until the earliest deadline, rounded up; -1 when there is none.
    func timeoutMilliseconds(now: UInt64) -> Int32 {
        guard let first = items.first else { return -1 }
        if first.deadline <= now { return 0 }
        let ms = (first.deadline - now + 999_999) / 1_000_000
        return Int32(min(ms, 60_000))
    }
}
