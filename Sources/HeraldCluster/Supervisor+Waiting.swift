import Glibc
import HeraldCore
import HeraldLoop
import HeraldProtocol

/// A control command waiting for its result (`herald reload|scale|upgrade --wait`): it is
/// answered once every old worker has exited (its connections moved or drained), or with
/// the reason it cannot finish, or when its time is up.
@LoopActor
final class OperationWaiter {
    enum Kind: Equatable {
        case reload
        case scale(Int)
        case upgrade
    }

    let kind: Kind
    let reply: ControlReply
    /// The workers that must exit before the command has finished.
    let old: Set<pid_t>
    /// Reload: the rolling replacement has ended (every slot has its new worker).
    var replacementEnded = false
    var timer: LoopTimer?
    /// The cluster's handoff counts when the command began (its result says what moved).
    var handoffAtStart = HandoffCounts()

    init(kind: Kind, reply: ControlReply, old: Set<pid_t>) {
        self.kind = kind
        self.reply = reply
        self.old = old
    }

    var name: String {
        switch kind {
        case .reload: return "reload"
        case .scale: return "scale"
        case .upgrade: return "upgrade"
        }
    }
}

extension Supervisor {
    /// How long a command waits by default: a new worker's ready time, the longest an old
    /// one may drain (its drain limit and `DrainWatch`'s extensions), and 30 s more.
    var defaultWaitMilliseconds: Int { options.readyTimeoutMilliseconds + DrainWatch.longest(limit: drainLimitMilliseconds) + 30_000 }

    /// The pids of the current workers (those a reload or an upgrade replaces).
    var currentPIDs: Set<pid_t> { Set(currentWorkers.compactMap { $0?.pid }) }

    /// `reload --wait`: answers `reply` once the reload has finished (or at once when it
    /// is refused).
    public func reload(waiting reply: ControlReply, timeoutMilliseconds: Int?) {
        let old = currentPIDs
        if let refusal = reload() {
            reply.send(error: refusal)
            return
        }
        wait(OperationWaiter(kind: .reload, reply: reply, old: old), timeoutMilliseconds: timeoutMilliseconds)
    }

    /// `scale N --wait`: answers once N workers run and the removed ones have exited.
    public func scale(to count: Int, waiting reply: ControlReply, timeoutMilliseconds: Int?) {
        let count = max(1, count)
        if upgrade != nil { return reply.send(error: "a binary upgrade is under way") }
        let removed = Set(currentWorkers.enumerated().filter { $0.offset >= count }.compactMap { $0.element?.pid })
        scale(to: count)
        if isStopping {
            reply.send(error: "the cluster is stopping")
            return
        }
        wait(OperationWaiter(kind: .scale(count), reply: reply, old: removed), timeoutMilliseconds: timeoutMilliseconds)
    }

    func wait(_ waiter: OperationWaiter, timeoutMilliseconds: Int?) {
        let timeout = timeoutMilliseconds ?? defaultWaitMilliseconds
        waiter.handoffAtStart = handoffTotals
        waiter.timer = EventLoop.current.schedule(afterMilliseconds: timeout) { [weak self, weak waiter] in
            guard let self, let waiter else { return }
            self.finish(waiter, error: "timed out after \(timeout / 1000) s waiting for the \(waiter.name) to finish; it goes on (see `herald status` and the log)")
        }
        waiters.append(waiter)
        waitersProgressed()
    }

    /// Announces a milestone to the service manager and to the waiting commands.
    func announce(_ milestone: Milestone) {
        onMilestone?(milestone)
        // A stop before the new supervisor took over ends the upgrade (it stops too).
        if milestone == .stopping, let upgrade, !isRetiredByUpgrade { upgrade.abandon() }
        for waiter in waiters {
            switch (milestone, waiter.kind) {
            case (.reloaded(let failure?), .reload):
                finish(waiter, error: "the reload failed: \(failure); the old workers keep serving")
            case (.reloaded(nil), .reload): waiter.replacementEnded = true
            case (.upgraded(let failure), .upgrade): finish(waiter, error: "the upgrade failed: \(failure)")
            case (.stopping, _): finish(waiter, error: "the cluster is stopping")
            default: break
            }
        }
    }

    /// Answers every waiting command whose work is done (after each worker report and exit).
    func waitersProgressed() {
        guard !waiters.isEmpty else { return }
        let alive = Set(workerProcesses.map(\.pid))
        for waiter in waiters where waiter.old.isDisjoint(with: alive) {
            switch waiter.kind {
            case .reload:
                guard waiter.replacementEnded else { continue }
            case .scale(let count):
                guard workerCount == count, currentWorkers.count == count,
                      currentWorkers.allSatisfy({ $0?.state == .running }) else { continue }
            case .upgrade:
                guard let upgrade, upgrade.isFinished, alive.isEmpty else { continue }
            }
            finish(waiter, error: nil)
        }
    }

    func finish(_ waiter: OperationWaiter, error: String?) {
        waiter.timer?.cancel()
        waiters.removeAll { $0 === waiter }
        guard error == nil else {
            waiter.reply.send(error: error)
            return
        }
        var fields: [(String, JSON)] = [("workersReplaced", .number(Double(waiter.old.count)))]
        var summary: String
        switch waiter.kind {
        case .reload: summary = "\(waiter.old.count) old workers replaced and exited"
        case .scale(let count):
            summary = "\(count) workers running" + (waiter.old.isEmpty ? "" : ", \(waiter.old.count) removed and exited")
        case .upgrade:
            summary = "the new supervisor (pid \(upgrade?.pid ?? 0)) serves; \(waiter.old.count) old workers handed over and exited"
            fields.append(("pid", .number(Double(upgrade?.pid ?? 0))))
        }
        let handoff = handoffTotals
        let moved = handoff.handedOver - waiter.handoffAtStart.handedOver
        let drained = handoff.drained - waiter.handoffAtStart.drained
        summary += "; \(moved) connections handed over, \(drained) drained"
        fields.append(("handedOver", .number(Double(moved))))
        fields.append(("drained", .number(Double(drained))))
        fields.append(("summary", .string(summary)))
        waiter.reply.send(error: nil, fields)
    }
}
