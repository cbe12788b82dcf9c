import CHeraldSystem
import Glibc
import Synchronization

/// Something that owns a file descriptor registered with the loop.
@LoopActor
public protocol EventHandler: AnyObject {
    /// Called on the loop thread with the epoll event bits for the handler's fd.
    func handleEvents(_ events: UInt32)
}

/// Work done once per loop iteration before the loop waits for events.
@LoopActor
public protocol BeforeSleepHook: AnyObject {
    func beforeSleep()
}

/// Epoll event bits, re-exported so callers need not import the C shim. Literal
/// constants (Linux's values; `IOEventsTests` checks them against the C shim's): the
/// shim's `extern const`s cost a `swift_once` per use on the request path.
public enum IOEvents {
    @inlinable public static var readable: UInt32 { 0x001 }     // EPOLLIN
    @inlinable public static var writable: UInt32 { 0x004 }     // EPOLLOUT
    @inlinable public static var error: UInt32 { 0x008 }        // EPOLLERR
    @inlinable public static var hangUp: UInt32 { 0x010 }       // EPOLLHUP
    @inlinable public static var readHangUp: UInt32 { 0x2000 }  // EPOLLRDHUP
    /// The shim's values, for the test that the literals above are Linux's.
    public static var systemValues: [UInt32] { [HERALD_EPOLLIN, HERALD_EPOLLOUT, HERALD_EPOLLERR, HERALD_EPOLLHUP, HERALD_EPOLLRDHUP] }
}

/// One thread's epoll loop: file descriptors, timers, and the Swift concurrency jobs
/// of `LoopActor`, all run on the thread that calls `run()`.
///
/// There is one loop per process (`EventLoop.current`); a worker process runs it on its
/// main thread. Only `enqueue` may be called from other threads.
public final class EventLoop: SerialExecutor, TaskExecutor, @unchecked Sendable {
    /// The process's loop.
    public static let current = EventLoop()

    private let epollFD: Int32
    private let wakeFD: Int32
    @exclusivity(unchecked) private var ownerThread: pthread_t?
    @exclusivity(unchecked) private var running = false

    // Registrations, indexed by fd; the generation guards against events for an fd that
    // was closed and reused within one batch.
    private struct Registration {
        var handler: (any EventHandler)?
        var generation: UInt32
    }
    @exclusivity(unchecked) private var handlers: [Registration] = []
    @exclusivity(unchecked) private var nextGeneration: UInt32 = 1

    // Jobs enqueued on the loop thread (no lock) and from elsewhere (locked, rare).
    @exclusivity(unchecked) private var localJobs: [UnownedJob] = []
    @exclusivity(unchecked) private var spareJobs: [UnownedJob] = []
    private let remoteJobs = Mutex<[UnownedJob]>([])
    private let remotePending = Atomic<Bool>(false)

    @exclusivity(unchecked) private var timers = TimerHeap()
    /// Timers in `timers` that were cancelled before their deadline.
    @exclusivity(unchecked) private var cancelledTimers = 0
    @exclusivity(unchecked) private var beforeSleep: [any BeforeSleepHook] = []
    /// Hooks run after every other: writers of what the others queued (Redis commands).
    @exclusivity(unchecked) private var lastBeforeSleep: [any BeforeSleepHook] = []

    private init() {
        epollFD = herald_epoll_create()
        wakeFD = herald_eventfd()
        precondition(epollFD >= 0 && wakeFD >= 0, "cannot create epoll or eventfd: errno \(herald_errno())")
        _ = herald_epoll_ctl(epollFD, HERALD_EPOLL_CTL_ADD, wakeFD, HERALD_EPOLLIN, UInt64(UInt32.max))
        localJobs.reserveCapacity(256)
        spareJobs.reserveCapacity(256)
    }

    // MARK: Executor

    public func enqueue(_ job: consuming ExecutorJob) {
        let unowned = UnownedJob(job)
        if isLoopThread {
            localJobs.append(unowned)
        } else {
            remoteJobs.withLock { $0.append(unowned) }
            if !remotePending.exchange(true, ordering: .acquiringAndReleasing) {
                var one: UInt64 = 1
                _ = write(wakeFD, &one, 8)
            }
        }
    }

    public func asUnownedSerialExecutor() -> UnownedSerialExecutor {
        UnownedSerialExecutor(ordinary: self)
    }

    public func checkIsolated() {
        precondition(isLoopThread, "not on the event loop thread")
    }

    public var isLoopThread: Bool {
        guard let owner = ownerThread else { return false }
        return pthread_equal(owner, pthread_self()) != 0
    }

    // MARK: File descriptors

    /// Registers `fd` for `events`; the loop keeps a strong reference to `handler` until
    /// `unregister`.
    @LoopActor
    public func register(fd: Int32, events: UInt32, handler: any EventHandler) throws(SystemError) {
        let index = Int(fd)
        if index >= handlers.count {
            handlers.append(contentsOf: repeatElement(Registration(handler: nil, generation: 0), count: max(index + 1 - handlers.count, handlers.count)))
        }
        let generation = nextGeneration
        nextGeneration &+= 1
        if nextGeneration == 0 { nextGeneration = 1 }
        handlers[index] = Registration(handler: handler, generation: generation)
        if herald_epoll_ctl(epollFD, HERALD_EPOLL_CTL_ADD, fd, events, UInt64(generation) << 32 | UInt64(UInt32(fd))) != 0 {
            handlers[index] = Registration(handler: nil, generation: 0)
            throw SystemError("epoll_ctl(ADD)")
        }
    }

    @LoopActor
    public func modify(fd: Int32, events: UInt32) {
        let generation = handlers[Int(fd)].generation
        _ = herald_epoll_ctl(epollFD, HERALD_EPOLL_CTL_MOD, fd, events, UInt64(generation) << 32 | UInt64(UInt32(fd)))
    }

    /// Removes `fd` from the loop and drops its handler. The caller closes the fd.
    @LoopActor
    public func unregister(fd: Int32) {
        _ = herald_epoll_ctl(epollFD, HERALD_EPOLL_CTL_DEL, fd, 0, 0)
        if Int(fd) < handlers.count { handlers[Int(fd)] = Registration(handler: nil, generation: 0) }
    }

    // MARK: Timers

    /// Calls `body` on the loop after `milliseconds`. Cancel through the returned timer.
    @LoopActor @discardableResult
    public func schedule(afterMilliseconds milliseconds: Int, _ body: @escaping @LoopActor () -> Void) -> LoopTimer {
        let timer = LoopTimer(deadline: Clock.monotonicNanos() &+ UInt64(max(0, milliseconds)) &* 1_000_000, body: body)
        timers.push(timer)
        return timer
    }

    /// Suspends the calling task for `milliseconds` without blocking the loop. Returns
    /// early, at once, when the task is cancelled (check `Task.isCancelled` after it).
    @LoopActor
    public func sleep(milliseconds: Int) async {
        let sleeper = Sleeper()
        await withTaskCancellationHandler {
            await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
                sleeper.start(continuation, milliseconds: milliseconds, on: self)
            }
        } onCancel: {
            sleeper.cancel()
        }
    }

    /// A timer was cancelled before firing: it stays in the heap until its deadline, so
    /// once cancelled timers are most of the heap they are swept out (a client could
    /// otherwise pile up cancelled 24-hour timers).
    @LoopActor
    func timerCancelled() {
        cancelledTimers += 1
        if cancelledTimers > 256 && cancelledTimers > timers.count / 2 {
            timers.removeCancelled()
            cancelledTimers = 0
        }
    }

    /// Calls `hook.beforeSleep()` once per loop iteration, after the ready work and
    /// before waiting (used to flush buffered output).
    /// `last`: after every hook added without it (for a writer of what they queue).
    @LoopActor
    public func addBeforeSleepHook(_ hook: any BeforeSleepHook, last: Bool = false) {
        if last { lastBeforeSleep.append(hook) } else { beforeSleep.append(hook) }
    }

    // MARK: Running

    /// Makes the calling thread the loop's, runs `setup` on it, then runs the loop until
    /// `stop()`. An error from `setup` is rethrown without running the loop.
    ///
    /// SIGPIPE is blocked on the thread while it runs (hiredis writes with `write(2)`):
    /// a write to a closed connection fails with EPIPE rather than ending the process.
    public func run(_ setup: @LoopActor () throws -> Void) throws {
        precondition(!running, "EventLoop.run: the loop is running already (one thread runs it at a time)")
        ownerThread = pthread_self()
        running = true
        let sigpipeWasBlocked = herald_block_sigpipe() != 0
        defer { if !sigpipeWasBlocked { herald_unblock_sigpipe() } }
        try LoopActor.assumeIsolated {
            try setup()
            self.runLoop()
        }
    }

    /// Makes `run()` return after the current iteration. Loop thread only.
    @LoopActor
    public func stop() { running = false }

    @LoopActor
    private func runLoop() {
        // A plain buffer, not an array: a closure handed to the standard library's
        // `withUnsafe…` from loop-isolated code costs a run-time isolation check per call.
        let capacity = 256
        let events = UnsafeMutablePointer<herald_epoll_event>.allocate(capacity: capacity)
        defer { events.deallocate() }
        while running {
            runJobs()
            for hook in beforeSleep { hook.beforeSleep() }
            for hook in lastBeforeSleep { hook.beforeSleep() }
            log.flush()
            guard running else { break }
            let timeout = localJobs.isEmpty ? timers.timeoutMilliseconds(now: Clock.monotonicNanos()) : 0
            let count = herald_epoll_wait(epollFD, events, Int32(capacity), timeout)
            if count < 0 {
                if herald_errno() == EINTR { continue }
                fatalError("epoll_wait failed: errno \(herald_errno())")
            }
            for i in 0..<Int(count) {
                let data = events[i].data
                if data == UInt64(UInt32.max) {
                    drainWake()
                    continue
                }
                let fd = Int(UInt32(truncatingIfNeeded: data))
                let generation = UInt32(truncatingIfNeeded: data >> 32)
                guard fd < handlers.count, handlers[fd].generation == generation,
                      let handler = handlers[fd].handler else { continue }
                handler.handleEvents(events[i].events)
            }
            runTimers()
        }
        runJobs()
    }

    @LoopActor
    private func runJobs() {
        // Jobs may enqueue more jobs; keep going until none are ready, but give I/O a
        // turn after a bounded number of rounds.
        var rounds = 0
        while !localJobs.isEmpty && rounds < 64 {
            swap(&localJobs, &spareJobs)
            for job in spareJobs {
                job.runSynchronously(isolatedTo: asUnownedSerialExecutor(), taskExecutor: asUnownedTaskExecutor())
            }
            spareJobs.removeAll(keepingCapacity: true)
            rounds += 1
        }
    }

    @LoopActor
    private func drainWake() {
        var value: UInt64 = 0
        _ = read(wakeFD, &value, 8)
        remotePending.store(false, ordering: .releasing)
        let jobs = remoteJobs.withLock { jobs -> [UnownedJob] in
            let taken = jobs
            jobs.removeAll()
            return taken
        }
        localJobs.append(contentsOf: jobs)
    }

    @LoopActor
    private func runTimers() {
        guard !timers.isEmpty else { return }
        let now = Clock.monotonicNanos()
        while let timer = timers.popExpired(now: now) {
            if timer.isPending { timer.fire() } else { cancelledTimers -= 1 }
        }
    }
}

/// The state of one `EventLoop.sleep`: its timer and the task waiting for it. Touched
/// on the loop thread only (a cancellation from elsewhere hops to the loop).
private final class Sleeper: @unchecked Sendable {
    @exclusivity(unchecked) private var continuation: UnsafeContinuation<Void, Never>?
    @exclusivity(unchecked) private var timer: LoopTimer?
    @exclusivity(unchecked) private var isCancelled = false

    @LoopActor
    func start(_ continuation: UnsafeContinuation<Void, Never>, milliseconds: Int, on loop: EventLoop) {
        if isCancelled || Task.isCancelled { return continuation.resume() }
        self.continuation = continuation
        timer = loop.schedule(afterMilliseconds: milliseconds) { [self] in wake() }
    }

    @LoopActor
    private func wake() {
        timer?.cancel()
        timer = nil
        if let continuation {
            self.continuation = nil
            continuation.resume()
        }
    }

    /// From the task's cancellation handler, which runs on the thread that cancelled.
    func cancel() {
        if EventLoop.current.isLoopThread {
            LoopActor.assumeIsolated {
                isCancelled = true
                wake()
            }
        } else {
            Task.onLoop { [self] in
                isCancelled = true
                wake()
            }
        }
    }
}
