import CHeraldSystem
import Glibc
import HeraldCore
import HeraldLoop
import HeraldProtocol

/// The old supervisor's side of a binary upgrade (`herald upgrade`, SIGUSR2), like nginx's
/// USR2: it starts the binary now on disk as a new supervisor with the same start options,
/// which inherits the listening sockets and the upgrade channel (UpgradeChannel). Until the
/// new one commits, this one serves as before and takes everything back if it fails; after,
/// it hands each slot's worker over to the new supervisor's worker of that slot and exits 0
/// once its workers have.
@LoopActor
final class UpgradeHandover: EventHandler {
    enum Phase { case starting, welcomed, committed, done }

    let pid: pid_t
    private let channel: Int32
    private unowned let supervisor: Supervisor
    private(set) var phase = Phase.starting
    private var open = true
    private var timer: LoopTimer?
    /// How the new supervisor exited, when it has (before it committed).
    private var exitDescription: String?
    private var channelClosedAt: LoopTimer?
    private(set) var handedOver = 0

    var isFinished: Bool { phase == .done }

    init(pid: pid_t, channel: Int32, supervisor: Supervisor, readyMilliseconds: Int) throws(SystemError) {
        self.pid = pid
        self.channel = channel
        self.supervisor = supervisor
        _ = fcntl(channel, F_SETFL, fcntl(channel, F_GETFL) | O_NONBLOCK)
        try EventLoop.current.register(fd: channel, events: IOEvents.readable | IOEvents.readHangUp, handler: self)
        timer = EventLoop.current.schedule(afterMilliseconds: readyMilliseconds) { [weak self] in
            guard let self, self.phase == .starting || self.phase == .welcomed else { return }
            self.fail("the new supervisor (pid \(self.pid)) did not have its workers serving within \(readyMilliseconds / 1000) s")
        }
    }

    func handleEvents(_ events: UInt32) {
        while open {
            let received: (message: JSONObject, descriptors: [Int32])?
            do {
                received = try UpgradeChannel.receive(on: channel)
            } catch {
                if error.errno == EAGAIN || error.errno == EWOULDBLOCK { return }
                closedChannel()
                return
            }
            guard let (message, descriptors) = received else {
                closedChannel()
                return
            }
            handle(message, descriptors: descriptors)
        }
    }

    private func handle(_ message: JSONObject, descriptors: [Int32]) {
        let type = message["type"]?.stringValue ?? ""
        if type != "slot" { for fd in descriptors { close(fd) } }
        switch (phase, type) {
        case (.starting, "hello"):
            if let problem = UpgradeChannel.versionProblem(message, peer: "new supervisor") {
                try? UpgradeChannel.send([("type", .string("refused")), ("reason", .string(problem))], on: channel)
                fail(problem)
                return
            }
            do {
                try UpgradeChannel.send([("type", .string("welcome")), ("version", .number(Double(UpgradeChannel.version)))], on: channel)
                phase = .welcomed
            } catch {
                fail("cannot answer the new supervisor: \(error)")
            }
        case (_, "refused"):
            fail("the new supervisor refused: \(message["reason"]?.stringValue ?? "no reason given")")
        case (.starting, "failed"), (.welcomed, "failed"):
            fail("the new supervisor gave up: \(message["reason"]?.stringValue ?? "no reason given")")
        case (.welcomed, "commit"):
            phase = .committed
            timer?.cancel()
            log.info("cluster.upgrade.committed", ["newPid": String(pid)])
            supervisor.retire()
        case (.committed, "slot"):
            let index = message["index"]?.numberValue.map { Int($0) } ?? -1
            let workers = supervisor.currentWorkers
            guard descriptors.count == 1, index >= 0, index < workers.count, let old = workers[index],
                  old.state != .draining else {
                log.warn("cluster.upgrade.slot.ignored", ["index": String(index)])
                for fd in descriptors { close(fd) }
                return
            }
            handedOver += 1
            log.info("cluster.upgrade.handover", ["index": String(index), "pid": String(old.pid)])
            supervisor.handOver(old, channels: descriptors)
        case (.committed, "done"):
            finishHandover()
        default:
            log.warn("cluster.upgrade.unexpected", ["message": type])
        }
    }

    /// The new supervisor closed the channel (it exited, or it is done with it).
    private func closedChannel() {
        closeChannel()
        switch phase {
        case .starting, .welcomed:
            if exitDescription != nil { failedBeforeCommit(); return }
            // Its exit status comes with SIGCHLD, usually at once: give it a moment.
            channelClosedAt = EventLoop.current.schedule(afterMilliseconds: 500) { [weak self] in self?.failedBeforeCommit() }
        case .committed: finishHandover()
        case .done: break
        }
    }

    private func failedBeforeCommit() {
        channelClosedAt?.cancel()
        guard phase == .starting || phase == .welcomed else { return }
        fail("the new supervisor (pid \(pid)) exited before its workers served (\(exitDescription ?? "its channel closed")); see its log")
    }

    func exited(status: Int32) {
        exitDescription = ProcessSpawner.describe(waitStatus: status)
        log.info("cluster.upgrade.successor.exited", ["pid": String(pid), "status": exitDescription ?? ""])
        if !open { failedBeforeCommit() }
    }

    /// Every slot was sent (or the channel closed after the commit): whatever was not
    /// handed over drains; this supervisor exits once its workers have.
    private func finishHandover() {
        guard phase == .committed else { return }
        phase = .done
        closeChannel()
        for worker in supervisor.workerProcesses where worker.state != .draining {
            supervisor.drain(worker, reason: "upgrade")
        }
        log.info("cluster.upgrade.handed.over", ["newPid": String(pid), "handedOver": String(handedOver)])
        supervisor.waitersProgressed()
        supervisor.finishIfStopped()
    }

    /// This supervisor stops before the new one took over: so does the new one.
    func abandon() {
        fail("the cluster is stopping", announcing: false)
    }

    /// Before the commit: the upgrade ends, this supervisor keeps serving with its workers.
    private func fail(_ reason: String, announcing: Bool = true) {
        guard phase == .starting || phase == .welcomed else { return }
        defer { withExtendedLifetime(self) {} }  // the supervisor lets go of it here
        timer?.cancel()
        channelClosedAt?.cancel()
        closeChannel()
        if exitDescription == nil { kill(pid, SIGTERM) }  // its workers, if any, drain
        log.error("cluster.upgrade.failed", ["newPid": String(pid), "reason": reason, "action": "the old supervisor keeps serving"])
        supervisor.upgrade = nil
        if announcing { supervisor.announce(.upgraded(failure: reason)) }
    }

    private func closeChannel() {
        guard open else { return }
        open = false
        EventLoop.current.unregister(fd: channel)
        close(channel)
    }
}

extension Supervisor {
    /// Whether a binary upgrade is under way (or done: this supervisor retires).
    public var isUpgrading: Bool { upgrade != nil }

    /// Whether a binary upgrade's new supervisor has taken over (the pidfile and the
    /// control socket are its own now).
    public var isRetiredByUpgrade: Bool {
        guard let upgrade else { return false }
        return upgrade.phase == .committed || upgrade.phase == .done
    }

    /// Starts a binary upgrade; `reply` (when the command waits) is answered once the old
    /// workers have exited, or with the reason the upgrade failed. Returns why it cannot
    /// start, or nil.
    @discardableResult
    public func upgrade(waiting reply: ControlReply?, timeoutMilliseconds: Int? = nil) -> String? {
        if let problem = upgradeProblem() {
            log.error("cluster.upgrade.refused", ["reason": problem])
            return problem
        }
        let old = currentPIDs
        let handover: UpgradeHandover
        do {
            handover = try startSuccessor()
        } catch {
            log.error("cluster.upgrade.failed", ["reason": error.description, "action": "the old supervisor keeps serving"])
            return "cannot start the new supervisor: \(error)"
        }
        upgrade = handover
        log.info("cluster.upgrade.start", ["newPid": String(handover.pid), "executable": options.executable,
                                          "workers": String(workerCount)])
        announce(.upgrading)
        if let reply {
            wait(OperationWaiter(kind: .upgrade, reply: reply, old: old),
                 timeoutMilliseconds: timeoutMilliseconds.map { $0 } ?? defaultWaitMilliseconds + options.readyTimeoutMilliseconds)
        }
        return nil
    }

    private func upgradeProblem() -> String? {
        if isStopping { return isRetiredByUpgrade ? "this supervisor was upgraded and is retiring" : "the cluster is stopping" }
        if upgrade != nil { return "an upgrade is already under way" }
        if isReloading { return "a reload is under way; upgrade once it has finished" }
        if let upgradeRefusal { return upgradeRefusal }
        if !currentWorkers.allSatisfy({ $0?.state == .running }) { return "not every worker is running yet; try again once they are" }
        return validateReload?()
    }

    /// Starts the binary on disk as `start` with this supervisor's options (through a
    /// memfd, never argv: they may hold secrets), the listening sockets and the channel.
    private func startSuccessor() throws(SpawnFailure) -> UpgradeHandover {
        let ends: (Int32, Int32)
        do { ends = try UpgradeChannel.makePair() } catch { throw SpawnFailure(description: error.description) }
        var closeOnFailure = [ends.0, ends.1]
        defer { for fd in closeOnFailure { close(fd) } }
        let startArguments = Array(options.workerArguments.dropFirst())
        let argumentsFD: Int32
        do { argumentsFD = try ArgumentChannel.makeDescriptor(startArguments) } catch {
            throw SpawnFailure(description: error.description)
        }
        defer { close(argumentsFD) }
        var slotFDs: [[Int32]] = []
        for index in 0..<currentWorkers.count {
            do { slotFDs.append(try sockets.fds(for: index)) } catch { throw SpawnFailure(description: "\(error)") }
        }
        let parents = [ends.1, argumentsFD] + slotFDs.flatMap { $0 } + upgradeDescriptors.map(\.fd)
        let numbers = UpgradeChannel.childNumbers(count: parents.count, avoiding: Set(parents))
        let descriptors = Array(zip(parents, numbers)).map { (parent: $0.0, child: $0.1) }
        var next = 2
        var slotsText: [String] = []
        for fds in slotFDs {
            slotsText.append(numbers[next..<(next + fds.count)].map(String.init).joined(separator: ","))
            next += fds.count
        }
        var variables = upgradeEnvironment
        for (offset, extra) in upgradeDescriptors.enumerated() { variables[extra.variable] = String(numbers[next + offset]) }
        variables[UpgradeChannel.fdVariable] = String(numbers[0])
        variables[ArgumentChannel.variable] = String(numbers[1])
        variables[UpgradeChannel.listenVariable] = slotsText.joined(separator: ";")
        variables[UpgradeChannel.predecessorVariable] = String(getpid())
        let pid: pid_t
        do {
            pid = try ProcessSpawner.spawn(path: options.executable,
                                           arguments: [options.executable, "start"] + Secrets.redact(arguments: startArguments),
                                           environment: ProcessSpawner.environment(with: variables), descriptors: descriptors)
        } catch {
            throw SpawnFailure(description: error.description)
        }
        close(ends.1)
        closeOnFailure = []
        do {
            return try UpgradeHandover(pid: pid, channel: ends.0, supervisor: self,
                                       readyMilliseconds: options.readyTimeoutMilliseconds + 15_000)
        } catch {
            close(ends.0)
            kill(pid, SIGTERM)
            throw SpawnFailure(description: error.description)
        }
    }

    /// A child that is not a worker exited: the new supervisor of an upgrade.
    func otherChildExited(pid: pid_t, status: Int32) {
        if let upgrade, upgrade.pid == pid { upgrade.exited(status: status) }
    }
}
