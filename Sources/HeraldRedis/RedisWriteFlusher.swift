import HeraldLoop

/// Writes the commands the process's Redis clients buffered during a loop iteration, in
/// the loop's before-sleep pass (after the workers' own output), the way client output
/// is flushed: one write per client per iteration, no `EPOLLOUT` armed and disarmed
/// (two `epoll_ctl` calls and an extra loop pass) for a write the socket takes at once.
/// `EPOLLOUT` is watched only while a write could not finish.
@LoopActor
final class RedisWriteFlusher: BeforeSleepHook {
    static let shared = RedisWriteFlusher()

    private var queued: [RedisClient] = []
    private var isRegistered = false

    /// `client` has commands to write before the loop next sleeps.
    func queue(_ client: RedisClient) {
        if !isRegistered {
            isRegistered = true
            EventLoop.current.addBeforeSleepHook(self, last: true)
        }
        queued.append(client)
    }

    func beforeSleep() {
        guard !queued.isEmpty else { return }
        var index = 0
        while index < queued.count {
            queued[index].writeQueued()
            index += 1
        }
        queued.removeAll(keepingCapacity: true)
    }
}
