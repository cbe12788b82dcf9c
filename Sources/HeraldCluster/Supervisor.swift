import CHeraldSystem
import Glibc
import HeraldCore
import HeraldLoop
import HeraldProtocol

/// The cluster's supervisor: owns the listening sockets for its whole life, starts the
/// workers, replaces crashed ones, and carries out stop, rolling reload and scale. It is
/// single-threaded (the process's event loop) and never touches client traffic.
@LoopActor
public final class Supervisor {
    public struct Options: Sendable {
        public var workers: Int
        /// The herald binary to start workers from (re-read from disk at each start, so
        /// a reload deploys an upgraded binary).
        public var executable: String
        /// Arguments after the executable: `worker` and the options `start` was given.
        public var workerArguments: [String]
        /// Variables added to (or removed from) the workers' environment.
        public var workerEnvironment: [String: String?]
        /// How long a worker may take to drain before it is killed.
        public var drainTimeoutMilliseconds: Int
        /// How long a new worker may take to say it is ready.
        public var readyTimeoutMilliseconds = 15_000
        /// Crash-loop guard: this many worker crashes within the window stop the cluster.
        public var crashLimit = 10
        public var crashWindowMilliseconds = 60_000

        public init(workers: Int, executable: String, workerArguments: [String],
                    workerEnvironment: [String: String?], drainTimeoutMilliseconds: Int) {
            self.workers = workers
            self.executable = executable
            self.workerArguments = workerArguments
            self.workerEnvironment = workerEnvironment
            self.drainTimeoutMilliseconds = drainTimeoutMilliseconds
        }
    }

    private(set) var options: Options
    let sockets: SlotSockets
    private let startedAt = Clock.wallMillis()
    /// The current worker of each slot.
    private var slots: [WorkerProcess?] = []
    /// Every live worker process, current, replacement or draining, by pid.
    private var processes: [pid_t: WorkerProcess] = [:]
    private var restartTimers: [Int: LoopTimer] = [:]
    private var crashTimes: [UInt64] = []
    /// Slots still to be replaced by the reload under way, and the replacement starting now.
    private var reloadQueue: [Int] = []
    private var replacement: WorkerProcess?
    var stopping = false
    private var stopTimer: LoopTimer?
    private var onStopped: (@LoopActor (Int32) -> Void)?
    private var exitStatus: Int32 = 0
    /// Checks the configuration before a reload; returns an error text to refuse it.
    public var validateReload: (@LoopActor () -> String?)?
    /// Extra fields for `status` (for example the Redis the cluster uses).
    public var statusFields: JSONObject = JSONObject()
    /// Called with the pid of a worker that died without being told to stop.
    public var onWorkerCrashed: (@LoopActor (_ serverID: String) -> Void)?
    /// Milestones for a service manager (systemd's notify protocol, SystemdNotifier).
    public enum Milestone: Sendable, Equatable {
        /// Every slot's first worker accepts connections.
        case serving
        case reloading
        /// A reload ended; `failure` says why it stopped early.
        case reloaded(failure: String?)
        /// A binary upgrade started; it ended in `failure` (on success the new supervisor
        /// announces itself, and this one only retires).
        case upgrading
        case upgraded(failure: String)
        case stopping
    }
    public var onMilestone: (@LoopActor (Milestone) -> Void)?
    /// Commands waiting for their result (`--wait`, Supervisor+Waiting.swift) and the
    /// binary upgrade under way or done (Supervisor+Upgrade.swift).
    var waiters: [OperationWaiter] = []
    var upgrade: UpgradeHandover?
    /// For a binary upgrade: variables for the new supervisor (NOTIFY_SOCKET),
    /// descriptors it inherits beside the listening sockets (each named by its
    /// variable), and why this cluster cannot be upgraded.
    public var upgradeEnvironment: [String: String?] = [:]
    public var upgradeDescriptors: [(variable: String, fd: Int32)] = []
    public var upgradeRefusal: String?
    private var servingAnnounced = false
    /// Handoff counts of the workers that have exited (the live ones report their own).
    var exitedHandoffs = HandoffCounts()

    public init(options: Options, sockets: SlotSockets) {
        self.options = options
        self.sockets = sockets
    }

    /// Starts the workers; `onStopped` runs with the exit status once all have exited
    /// after a stop.
    public func start(onStopped: @escaping @LoopActor (Int32) -> Void) {
        self.onStopped = onStopped
        log.info("cluster.start", ["workers": String(options.workers), "executable": options.executable,
                                   "pid": String(getpid())])
        scale(to: options.workers)
    }

    // MARK: Commands

    /// The number of workers the cluster runs.
    public var workerCount: Int { options.workers }

    public var isReloading: Bool { replacement != nil || !reloadQueue.isEmpty }

    /// A rolling reload: each slot gets a new worker, and the old one is told to drain
    /// only once the new one accepts connections.
    /// What the metrics responder reads (Supervisor+Metrics.swift).
    var metrics = SupervisorMetrics()
    var workerProcesses: [WorkerProcess] { Array(processes.values) }
    var currentWorkers: [WorkerProcess?] { slots }
    var isStopping: Bool { stopping }

    @discardableResult
    public func reload() -> String? {
        guard !stopping else { return "the cluster is stopping" }
        guard !isReloading else { return "a reload is already under way" }
        guard upgrade == nil else { return "a binary upgrade is under way" }
        if let problem = validateReload?() {
            log.error("cluster.reload.refused", ["reason": problem])
            return problem
        }
        reloadQueue = slots.indices.filter { slots[$0] != nil }
        metrics.reloads += 1
        announce(.reloading)
        log.info("cluster.reload.start", ["workers": String(reloadQueue.count)])
        replaceNext()
        return nil
    }

    /// Grows or shrinks the cluster to `count` workers.
    public func scale(to count: Int) {
        guard !stopping, upgrade == nil || count == options.workers else { return }
        let count = max(1, count)
        options.workers = count
        log.info("cluster.scale", ["workers": String(count)])
        while slots.count < count { slots.append(nil) }
        for index in 0..<count where slots[index] == nil && restartTimers[index] == nil {
            spawnOrRetry(index: index)
        }
        while slots.count > count {
            let index = slots.count - 1
            restartTimers.removeValue(forKey: index)?.cancel()
            reloadQueue.removeAll { $0 == index }
            if let worker = slots.removeLast() {
                // Its connections move to the workers that stay (Supervisor+Handoff.swift).
                handOff(from: worker, to: slots.compactMap { $0 }.filter { $0.state == .running }, reason: "scale down")
            }
            sockets.release(slot: index)
        }
    }

    /// Stops every worker gracefully, then calls `onStopped`.
    public func stop(status: Int32 = 0) {
        guard !stopping else { return }
        stopping = true
        exitStatus = status
        log.info("cluster.stopping", ["workers": String(processes.count)])
        announce(.stopping)
        for timer in restartTimers.values { timer.cancel() }
        restartTimers.removeAll()
        reloadQueue.removeAll()
        for worker in processes.values { drain(worker, reason: "stop") }
        // The backstop behind each worker's own drain watch.
        stopTimer = EventLoop.current.schedule(afterMilliseconds: DrainWatch.longest(limit: drainLimitMilliseconds) + 1_000) { [weak self] in
            guard let self else { return }
            for worker in self.processes.values {
                log.warn("worker.kill", ["pid": String(worker.pid), "reason": "did not stop in time"])
                worker.signal(SIGKILL)
            }
        }
        finishIfStopped()
    }

    /// A binary upgrade's new supervisor took over (Supervisor+Upgrade.swift): no worker
    /// is started or replaced any more; the workers are handed over or drained by the
    /// upgrade, and `onStopped` runs (status 0) once all have exited.
    func retire() {
        guard !stopping else { return }
        stopping = true
        exitStatus = 0
        for timer in restartTimers.values { timer.cancel() }
        restartTimers.removeAll()
        reloadQueue.removeAll()
        log.info("cluster.retiring", ["workers": String(processes.count)])
    }

    /// The status the CLI shows.
    public var status: JSON {
        var supervisor = JSONObject([
            ("pid", .number(Double(getpid()))), ("uptime", .number(Double(Clock.wallMillis() - startedAt))),
            ("workers", .number(Double(options.workers))), ("reloading", .bool(isReloading)),
            ("stopping", .bool(stopping)),
        ])
        for (key, value) in statusFields { supervisor[key] = value }
        supervisor["handoff"] = handoffStatus
        let workers = processes.values.sorted { ($0.index, $0.startedAt) < ($1.index, $1.startedAt) }.map(\.asJSON)
        return .object(JSONObject([("supervisor", .object(supervisor)), ("workers", .array(workers))]))
    }

    /// SIGUSR1 (logrotate): the supervisor opens its log file again and has every worker
    /// do the same; a worker still starting is told once it is ready (its SIGUSR1 watcher
    /// is set up by then).
    public func reopenLogs() {
        if let error = log.reopen() { log.error("log.reopen.failed", ["error": error.description]) }
        for worker in processes.values {
            if worker.state == .starting { worker.reopenLogWhenReady = true } else { worker.signal(SIGUSR1) }
        }
        log.info("log.reopened", ["workers": String(processes.count)])
    }

    // MARK: Worker life cycle

    /// Starts the worker of an empty slot; when it cannot be started, the failure
    /// counts as a crash (so retries back off and the crash-loop guard applies) and the
    /// slot is retried.
    private func spawnOrRetry(index: Int) {
        do {
            let worker = try spawn(index: index)
            slots[index] = worker
        } catch {
            log.error("worker.spawn.failed", ["index": String(index), "error": error.description])
            slots[index] = nil
            noteCrash()
            scheduleRestart(index: index)
        }
    }

    private func spawn(index: Int) throws(SpawnFailure) -> WorkerProcess {
        let listenFDs: [Int32]
        do {
            listenFDs = try sockets.fds(for: index)
        } catch {
            throw SpawnFailure(description: "\(error)")
        }
        var pair: [Int32] = [0, 0]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pair) == 0 else {
            throw SpawnFailure(description: SystemError("socketpair").description)
        }
        // The worker's options, secrets included, go through a descriptor; its argv
        // shows them redacted (ArgumentChannel).
        let argumentsFD: Int32
        do {
            // What the worker's command (`worker`) is given: the arguments after it.
            argumentsFD = try ArgumentChannel.makeDescriptor(Array(options.workerArguments.dropFirst()))
        } catch {
            close(pair[0]); close(pair[1])
            throw SpawnFailure(description: error.description)
        }
        defer { close(argumentsFD) }
        var descriptors: [(parent: Int32, child: Int32)] = [(pair[1], WorkerEnvironment.controlFDNumber)]
        var childListenFDs: [Int32] = []
        for (offset, fd) in listenFDs.enumerated() {
            let target = WorkerEnvironment.firstListenFDNumber + Int32(offset)
            descriptors.append((fd, target))
            childListenFDs.append(target)
        }
        let argumentsTarget = WorkerEnvironment.firstListenFDNumber + Int32(listenFDs.count)
        descriptors.append((argumentsFD, argumentsTarget))
        let environment = WorkerEnvironment(index: index, listenFDs: childListenFDs,
                                            controlFD: WorkerEnvironment.controlFDNumber, supervisorPID: getpid())
        var variables = options.workerEnvironment
        for (name, value) in environment.variables { variables[name] = value }
        variables[ArgumentChannel.variable] = String(argumentsTarget)
        let pid: pid_t
        do {
            pid = try ProcessSpawner.spawn(path: options.executable,
                                           arguments: [options.executable] + Secrets.redact(arguments: options.workerArguments),
                                           environment: ProcessSpawner.environment(with: variables), descriptors: descriptors)
        } catch {
            close(pair[0]); close(pair[1])
            throw SpawnFailure(description: error.description)
        }
        close(pair[1])
        let worker: WorkerProcess
        do {
            worker = try WorkerProcess(index: index, pid: pid, controlFD: pair[0], supervisor: self)
        } catch {
            close(pair[0])
            kill(pid, SIGKILL)  // reaped by reapChildren, which does not know it
            throw SpawnFailure(description: error.description)
        }
        processes[pid] = worker
        log.info("worker.started", ["index": String(index), "pid": String(pid)])
        worker.readyTimer = EventLoop.current.schedule(afterMilliseconds: options.readyTimeoutMilliseconds) { [weak self, weak worker] in
            guard let self, let worker, worker.state == .starting else { return }
            log.error("worker.ready.timeout", ["index": String(worker.index), "pid": String(worker.pid)])
            worker.signal(SIGKILL)
            _ = self
        }
        return worker
    }

    func received(_ report: WorkerReport, from worker: WorkerProcess) {
        defer { waitersProgressed() }
        worker.serverID = report.serverID
        worker.connections = report.connections
        worker.rooms = report.rooms
        worker.totalActions = report.totalActions
        worker.counters = report.counters
        worker.redisUp = report.redisUp
        worker.handoff = report.handoff
        worker.redisNode = report.redisNode
        worker.stopWork = report.stopWork
        worker.hasReported = true
        guard report.protocolVersion == ControlProtocol.version else {
            // Another binary's worker: it must not be given connections or commands.
            guard worker.state == .starting else { return }
            log.error("worker.control.version", ["pid": String(worker.pid), "received": String(report.protocolVersion ?? 0),
                                                 "expected": String(ControlProtocol.version),
                                                 "action": "refusing the worker: the supervisor and the worker binary do not match"])
            worker.signal(SIGKILL)
            return
        }
        guard report.kind == .ready, worker.state == .starting else { return }
        worker.state = .running
        worker.readyTimer?.cancel()
        log.info("worker.ready", ["index": String(worker.index), "pid": String(worker.pid), "serverId": report.serverID])
        if worker.reopenLogWhenReady {
            worker.reopenLogWhenReady = false
            worker.signal(SIGUSR1)
        }
        if !servingAnnounced && slots.allSatisfy({ $0?.state == .running }) {
            servingAnnounced = true
            announce(.serving)
        }
        if worker === replacement {
            // The new worker accepts: now the old one of its slot may drain.
            replacement = nil
            if let old = slots[worker.index], old !== worker { handOff(from: old, to: [worker], reason: "reload") }
            slots[worker.index] = worker
            log.info("cluster.reload.step", ["index": String(worker.index), "pid": String(worker.pid)])
            replaceNext()
        }
    }

    private func replaceNext() {
        guard !stopping else { return }
        while let index = reloadQueue.first {
            reloadQueue.removeFirst()
            guard index < slots.count, slots[index] != nil else { continue }
            do {
                replacement = try spawn(index: index)
                return
            } catch {
                // The new binary cannot be started: keep the old workers, as when a new
                // worker exits before it is ready.
                log.error("worker.spawn.failed", ["index": String(index), "error": error.description])
                reloadQueue.removeAll()
                log.error("cluster.reload.failed", ["index": String(index), "reason": "cannot start a new worker: \(error)"])
                announce(.reloaded(failure: "cannot start a new worker"))
                return
            }
        }
        log.info("cluster.reload.done", [:])
        announce(.reloaded(failure: nil))
    }

    func drain(_ worker: WorkerProcess, reason: String) {
        guard markDraining(worker, reason: reason) else { return }
        worker.signal(SIGTERM)
    }

    /// The worker is told to stop (a drain or a handoff): it gets the drain time, then is
    /// killed, unless it is still closing connections (`DrainWatch`).
    func markDraining(_ worker: WorkerProcess, reason: String) -> Bool {
        guard worker.state != .draining else { return false }
        worker.state = .draining
        worker.readyTimer?.cancel()
        log.info("worker.stopping", ["index": String(worker.index), "pid": String(worker.pid), "reason": reason])
        let limit = drainLimitMilliseconds
        var watch = DrainWatch(startedAt: Int(Clock.monotonicNanos() / 1_000_000), limit: limit, remaining: worker.drainRemaining)
        // (The worker is a parameter, not captured: the timer it holds must not hold it.)
        func look(_ worker: WorkerProcess, after delay: Int) {
            worker.killTimer = EventLoop.current.schedule(afterMilliseconds: delay) { [weak worker] in
                guard let worker else { return }
                let now = Int(Clock.monotonicNanos() / 1_000_000)
                switch watch.check(now: now, remaining: worker.drainRemaining) {
                case .extend:
                    log.info("worker.drain.slow", ["pid": String(worker.pid), "connections": String(worker.connections),
                                                   "stopWork": String(worker.drainRemaining),
                                                   "elapsedMs": String(now - watch.startedAt)])
                    look(worker, after: DrainWatch.checkInterval)
                case .kill:
                    log.warn("worker.kill", ["pid": String(worker.pid), "reason": "did not drain in time",
                                             "connections": String(worker.connections), "elapsedMs": String(now - watch.startedAt)])
                    worker.signal(SIGKILL)
                }
            }
        }
        look(worker, after: limit)
        return true
    }

    /// When a stopping worker is first looked at: `pendingShutdownWaitLimit` (its own
    /// goodbye deadline) and 5 s to send the goodbyes and close.
    var drainLimitMilliseconds: Int { options.drainTimeoutMilliseconds + 5_000 }

    /// Reaps exited children (on SIGCHLD).
    public func reapChildren() {
        while true {
            var status: Int32 = 0
            let pid = waitpid(-1, &status, WNOHANG)
            if pid <= 0 { break }
            guard let worker = processes.removeValue(forKey: pid) else {
                otherChildExited(pid: pid, status: status)
                continue
            }
            exited(worker, status: status)
        }
        waitersProgressed()
        finishIfStopped()
    }

    private func exited(_ worker: WorkerProcess, status: Int32) {
        worker.readyTimer?.cancel()
        worker.killTimer?.cancel()
        worker.readRemainingReports()
        exitedHandoffs.handedOver += worker.handoff.handedOver
        exitedHandoffs.drained += worker.handoff.drained
        exitedHandoffs.adopted += worker.handoff.adopted
        worker.closeChannel()
        retire(worker)
        let description = ProcessSpawner.describe(waitStatus: status)
        let wasCurrent = worker.index < slots.count && slots[worker.index] === worker
        let wasReplacement = worker === replacement
        if worker.state == .draining {
            log.info("worker.exited", ["index": String(worker.index), "pid": String(worker.pid), "status": description])
            return
        }
        log.error("worker.exited", ["index": String(worker.index), "pid": String(worker.pid), "status": description,
                                    "unexpected": "true"])
        if !worker.serverID.isEmpty { onWorkerCrashed?(worker.serverID) }
        if wasReplacement {
            // The new binary or configuration does not start: keep the old workers.
            replacement = nil
            reloadQueue.removeAll()
            log.error("cluster.reload.failed", ["index": String(worker.index), "reason": "new worker exited before ready: \(description)"])
            announce(.reloaded(failure: "a new worker exited before it was ready"))
        }
        guard !stopping, wasCurrent || wasReplacement else { return }
        if wasCurrent { slots[worker.index] = nil }
        noteCrash()
        if !stopping && wasCurrent { scheduleRestart(index: worker.index) }
    }

    private func noteCrash() {
        let now = Clock.monotonicNanos()
        let window = UInt64(options.crashWindowMilliseconds) * 1_000_000
        crashTimes = crashTimes.filter { now &- $0 < window } + [now]
        if crashTimes.count >= options.crashLimit {
            log.error("cluster.crashloop", ["crashes": String(crashTimes.count),
                                            "windowMs": String(options.crashWindowMilliseconds),
                                            "action": "stopping the cluster"])
            stop(status: 1)
        }
    }

    /// Restarts a slot: at once after an isolated crash, then backing off (up to 5 s)
    /// while crashes (or failures to start a worker) keep coming.
    private func scheduleRestart(index: Int) {
        guard !stopping, restartTimers[index] == nil else { return }
        let recent = max(0, crashTimes.count - 1)
        let delay = recent == 0 ? 0 : min(5_000, 100 << min(recent, 6))
        if delay > 0 { log.warn("worker.restart.backoff", ["index": String(index), "delayMs": String(delay)]) }
        restartTimers[index] = EventLoop.current.schedule(afterMilliseconds: delay) { [weak self] in
            guard let self else { return }
            self.restartTimers[index] = nil
            guard !self.stopping, index < self.slots.count, self.slots[index] == nil else { return }
            self.spawnOrRetry(index: index)
            self.metrics.restarts += 1
            if let worker = self.slots[index] {
                log.info("worker.replaced", ["index": String(index), "pid": String(worker.pid)])
            }
        }
    }

    func finishIfStopped() {
        guard stopping, processes.isEmpty, let onStopped else { return }
        self.onStopped = nil
        stopTimer?.cancel()
        log.info("cluster.stopped", ["status": String(exitStatus)])
        onStopped(exitStatus)
    }
}

struct SpawnFailure: Error, CustomStringConvertible {
    let description: String
}
