import CHiredis
import Glibc
import HeraldCore
import HeraldLoop

/// One Redis connection through the hiredis async API, driven by the worker's epoll loop.
///
/// - Connects by host and port or unix socket, then AUTH and SELECT; `onReady` runs each
///   time that handshake succeeds (first connect and every reconnect).
/// - A lost or failed connection is replaced by a new hiredis context after a backoff
///   (100 ms doubling to 2 s); commands in flight fail with `.disconnected`, commands
///   sent while there is no connection fail at once with `.unavailable` — except while
///   the sentinels are being asked for the master (a connect is about to start): those
///   wait for it, within the command timeout (`heldForConnect`).
/// - Every command that waits for a reply has a deadline on a loop timer (hiredis 0.14
///   has none); when nothing at all came back from Redis since the command was sent,
///   the connection is dropped and rebuilt.
/// - Commands only: subscriptions are `RedisSubscriber`'s (their own connection).
/// - A `redis-sentinel://` endpoint: before each connect the process's `SentinelResolver`
///   names the master; the handshake adds `ROLE` and refuses a node that is not one.
/// - A `redis-cluster://` endpoint is `RedisClusterClient`'s: it runs one client per
///   master, each on a plain `host:port` endpoint.
@LoopActor
public final class RedisClient: EventHandler {
    public enum State: Equatable, Sendable {
        case idle, connecting, ready, waiting, stopped
    }

    public let endpoint: RedisEndpoint
    public let name: String
    public let commandTimeout: Int
    public private(set) var state: State = .idle {
        didSet { noteStateChange(from: oldValue) }
    }
    /// Whether this client has been connected before (a later connect is a reconnect).
    private var wasEverReady = false
    /// Why the last connection attempt failed or the connection was lost.
    public private(set) var lastError = "not connected yet"
    public var isReady: Bool { state == .ready }
    /// Ready, connecting, or asking the sentinels for the node to connect to: a command
    /// sent now is written once connected (or fails within the command timeout).
    public var acceptsCommands: Bool { state == .ready || state == .connecting || (resolving && state != .stopped) }

    /// Runs after each successful connect and handshake.
    public var onReady: (@LoopActor () -> Void)?

    private var context: UnsafeMutablePointer<redisAsyncContext>?
    private var registeredFD: Int32 = -1
    private var interest: UInt32 = 0
    private var backoff = RedisClient.initialBackoff
    private var retryTimer: LoopTimer?
    private var lastReplyAt: UInt64 = 0
    private let input = RedisInput()
    private var failures = 0
    /// Sentinel endpoints: the node being connected to or connected (the master the
    /// sentinels named), and whether the master is being asked for now.
    public private(set) var connectedNode: RedisNode?
    private var attemptedNode: RedisNode?
    var resolving = false
    /// Commands sent while the sentinels were being asked (no hiredis context yet): sent
    /// after the handshake once the connect starts, failed when it cannot, each failed at
    /// the command timeout if still held then.
    private let heldForConnect = RedisHeldCommands()
    /// No logs and no process counts (the resolver's short-lived sentinel connections).
    var quiet = false
    static let initialBackoff = 100
    static let maximumBackoff = 2_000

    /// The node's role when the caller knows it (a cluster's slot map names masters), for
    /// `herald status`; a Sentinel endpoint's role is checked with ROLE instead.
    var nodeRole: String?

    public init(endpoint: RedisEndpoint, name: String, commandTimeout: Int = 2_000) {
        self.endpoint = endpoint
        self.name = name
        self.commandTimeout = commandTimeout
    }

    /// Connects (and keeps reconnecting until `stop()`).
    public func start() {
        guard state == .idle else { return }
        connect()
    }

    /// Writes what is buffered (best effort), then closes the connection for good.
    public func stop() {
        guard state != .stopped else { return }
        state = .stopped
        if !quiet { ProcessMetrics.redisNodes[name] = nil }
        retryTimer?.cancel()
        releaseHeld(on: nil)
        if let context {
            flushWrites()
            redisAsyncFree(context)  // fails what is pending; cleanup hook unregisters
        }
    }

    /// Pushes buffered commands to the socket now (used right before the process exits).
    public func flushWrites() {
        guard let context, interest & IOEvents.writable != 0 || isQueuedForWrite else { return }
        redisAsyncHandleWrite(context)
    }

    // Writes are made in the loop's before-sleep pass (RedisWriteFlusher), not on EPOLLOUT.
    private var isQueuedForWrite = false
    private var isWriting = false
    /// How many times EPOLLOUT was armed (a connect, a write the socket did not take).
    public private(set) var writableWaits = 0

    /// hiredis has a command to write (its addWrite hook). Before the handshake, and when
    /// a write could not finish, that is EPOLLOUT's job (a connect completes on it).
    fileprivate func writeWanted() {
        guard state == .ready, !isWriting else { return changeInterest(add: IOEvents.writable, remove: 0) }
        guard !isQueuedForWrite else { return }
        isQueuedForWrite = true
        RedisWriteFlusher.shared.queue(self)
    }

    /// Writes what hiredis buffered; what the socket does not take waits for EPOLLOUT.
    func writeQueued() {
        guard isQueuedForWrite else { return }
        isQueuedForWrite = false
        guard let context, state == .ready else { return }  // a new connection writes on EPOLLOUT
        isWriting = true
        redisAsyncHandleWrite(context)  // may free the context (a write error)
        isWriting = false
    }

    // MARK: Commands


    public func command(_ arguments: String...) async throws -> RedisReply {
        try await command(arguments.map { Array($0.utf8) })
    }

    /// Sends a command whose reply nobody waits for; false when there is no connection.
    @discardableResult
    public func sendAndForget(_ arguments: [[UInt8]]) -> Bool {
        guard state == .ready, let context else { return false }
        return Self.withArgv(arguments) { argc, argv, lengths in
            redisAsyncCommandArgv(context, nil, nil, argc, argv, lengths) == REDIS_OK
        }
    }

    // MARK: Publishing with backpressure

    /// Bytes of messages published and not yet acknowledged by Redis (its reply to the
    /// PUBLISH): queued in hiredis, in the socket, or not yet processed by Redis.
    public private(set) var unacknowledgedBytes = 0
    /// Past this many unacknowledged bytes the client is congested; it is drained again
    /// at half of it.
    public var publishHighWater = 1 << 20
    /// Set when `unacknowledgedBytes` passed `publishHighWater`, cleared (and
    /// `onPublishDrained` called) once it is back under half of it.
    public private(set) var isPublishCongested = false
    public var onPublishDrained: (@LoopActor () -> Void)?

    /// The PUBLISHes sent and not answered yet, oldest first (from `unansweredHead` on).
    /// A connection that breaks takes with it what Redis had not read, and the say was
    /// answered already: these are sent again, in order, as soon as a connection is ready
    /// (`becameReady`), before anything new. Redis may have run some of them, so a
    /// message can arrive twice; the receiving bus drops the repeat (`RedisBus`, by
    /// origin, channel and sequence). Bounded by the publisher's backpressure
    /// (`publishHighWater`): says are held while this much is unanswered.
    private var unanswered: [(arguments: [[UInt8]], weight: Int)] = []
    private var unansweredHead = 0
    /// PUBLISHes sent again after a broken connection (for tests and the log).
    public private(set) var republished = 0

    /// Sends a command (a PUBLISH) whose reply only counts `bytes` as acknowledged, and
    /// keeps it until Redis answers (see `unanswered`). False when there is no connection
    /// and none is being made (`acceptsPublish`).
    public func publish(_ arguments: [[UInt8]], bytes: Int) -> Bool {
        guard acceptsPublish, context != nil else { return false }
        let weight = max(1, bytes)
        if state == .connecting {
            // (A worker serves before its first connection is up: kept, and sent once the
            // connection is ready, in order, with anything left from an earlier one.)
            unsent += 1
        } else {
            guard sendPublish(arguments) else { return false }
        }
        unanswered.append((arguments, weight))
        unacknowledgedBytes += weight
        if unacknowledgedBytes > publishHighWater { isPublishCongested = true }
        return true
    }

    private func sendPublish(_ arguments: [[UInt8]]) -> Bool {
        guard let context else { return false }
        return Self.withArgv(arguments) { argc, argv, lengths in
            redisAsyncCommandArgv(context, redisPublishCallback, nil, argc, argv, lengths) == REDIS_OK
        }
    }

    /// Redis answered the oldest PUBLISH (`answered`), or the connection failed under it
    /// (it stays, to be sent again).
    fileprivate func publishCompleted(answered: Bool) {
        guard answered, unansweredHead < unanswered.count else { return }
        let weight = unanswered[unansweredHead].weight
        unanswered[unansweredHead].arguments = []
        unansweredHead += 1
        if unansweredHead == unanswered.count {
            unanswered.removeAll(keepingCapacity: unanswered.count <= 1_024)
            unansweredHead = 0
        } else if unansweredHead >= 1_024 && unansweredHead * 2 >= unanswered.count {
            // A steady stream always has some in flight: drop the answered front now and
            // then, or the array would grow with every PUBLISH ever sent.
            unanswered.removeFirst(unansweredHead)
            unansweredHead = 0
        }
        unacknowledgedBytes -= weight
        if isPublishCongested && unacknowledgedBytes <= publishHighWater / 2 {
            isPublishCongested = false
            onPublishDrained?()
        }
    }

    /// Whether `publish` takes a message now: connected, or connecting (then it is sent
    /// once the connection is ready).
    public var acceptsPublish: Bool { state == .ready || state == .connecting }

    /// The last `unsent` of `unanswered` were taken while connecting and never sent.
    private var unsent = 0

    /// Sends, in order, what the last connection did not get answered and what was taken
    /// while connecting.
    private func republishUnanswered() {
        let unsent = self.unsent
        self.unsent = 0
        guard unansweredHead < unanswered.count else { return }
        var index = unansweredHead
        while index < unanswered.count, sendPublish(unanswered[index].arguments) { index += 1 }
        let again = max(0, index - unansweredHead - unsent)
        guard again > 0 else { return }
        republished += again
        log.info("redis.republished", ["client": name, "messages": String(again),
                                       "reason": "the last connection broke before Redis answered them"])
    }

    /// Sends a command; `completion` runs exactly once, with the reply or the failure.
    public func send(_ arguments: [[UInt8]], completion: @escaping @LoopActor (Result<RedisReply, RedisError>) -> Void) {
        guard state == .ready || state == .connecting, let context else {
            guard resolving, state != .stopped else { return completion(.failure(.unavailable(lastError))) }
            return heldForConnect.hold(arguments, timeout: commandTimeout, completion: completion)
        }
        sendNow(arguments, on: context, completion: completion)
    }

    /// Sends the held commands on the new connection (after its handshake), or fails them.
    private func releaseHeld(on context: UnsafeMutablePointer<redisAsyncContext>?) {
        guard let context else { return heldForConnect.fail(.unavailable(lastError)) }
        heldForConnect.release { arguments, completion in sendNow(arguments, on: context, completion: completion) }
    }

    private func sendNow(_ arguments: [[UInt8]], on context: UnsafeMutablePointer<redisAsyncContext>,
                         completion: @escaping @LoopActor (Result<RedisReply, RedisError>) -> Void) {
        let pending = PendingCommand(completion: completion, sentAt: Clock.monotonicNanos())
        let opaque = Unmanaged.passRetained(pending).toOpaque()
        let status = Self.withArgv(arguments) { argc, argv, lengths in
            redisAsyncCommandArgv(context, redisCommandCallback, opaque, argc, argv, lengths)
        }
        guard status == REDIS_OK else {
            Unmanaged<PendingCommand>.fromOpaque(opaque).release()
            return completion(.failure(.unavailable(lastError)))
        }
        let timeout = commandTimeout
        pending.timer = EventLoop.current.schedule(afterMilliseconds: timeout) { [weak self, pending] in
            guard pending.isPending else { return }
            // A loop busy past the deadline (a say to 20,000 members on a starved host) runs
            // its timers before it has read what came meanwhile: read what is there first.
            if let self, self.state == .ready { self.handleEvents(IOEvents.readable) }
            guard pending.isPending else { return }
            pending.complete(.failure(.timeout(timeout)))
            // Nothing came back since the command went out: the connection is stuck.
            if let self, self.lastReplyAt < pending.sentAt { self.drop(reason: "no reply within \(timeout) ms") }
        }
    }

    /// Calls `body` with argc, argv and argvlen pointing into `arguments` (no copies).
    /// Nonisolated: its closures, handed to the standard library, would otherwise get a
    /// run-time isolation check each (three per PUBLISH, ~1,300 instructions).
    nonisolated static func withArgv<R>(_ arguments: [[UInt8]],
                            _ body: (Int32, UnsafeMutablePointer<UnsafePointer<CChar>?>, UnsafePointer<Int>) -> R) -> R {
        let count = arguments.count
        return withUnsafeTemporaryAllocation(of: UnsafePointer<CChar>?.self, capacity: count) { argv in
            withUnsafeTemporaryAllocation(of: Int.self, capacity: count) { lengths in
                func nest(_ index: Int) -> R {
                    if index == count { return body(Int32(count), argv.baseAddress!, UnsafePointer(lengths.baseAddress!)) }
                    return arguments[index].withUnsafeBufferPointer { bytes in
                        argv[index] = bytes.baseAddress.map { UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self) }
                            ?? emptyArgument
                        lengths[index] = bytes.count
                        return nest(index + 1)
                    }
                }
                return nest(0)
            }
        }
    }

    // MARK: Connecting

    private func connect() {
        guard state != .stopped else { return }
        connectToCurrentMaster()
    }

    /// Drops the connection and connects again (to the master the sentinels name now),
    /// without waiting for a pending backoff.
    public func reconnect(reason: String) {
        switch state {
        case .ready, .connecting: drop(reason: reason)
        case .waiting:
            guard !resolving else { return }
            retryTimer?.cancel()
            backoff = Self.initialBackoff
            connect()
        case .idle, .stopped: break
        }
    }

    func connect(to node: RedisNode?) {
        guard state != .stopped else { return }
        attemptedNode = node
        let made: UnsafeMutablePointer<redisAsyncContext>?
        switch endpoint.address {
        case .tcp(let host, let port): made = redisAsyncConnect(host, Int32(port))
        case .unix(let path): made = redisAsyncConnectUnix(path)
        case .sentinel: made = node.map { redisAsyncConnect($0.host, Int32($0.port)) } ?? nil
        case .cluster(let seeds): made = redisAsyncConnect(seeds[0].host, Int32(seeds[0].port))  // (RedisClusterClient routes)
        }
        guard let made else {
            return connectionFailed("cannot allocate a hiredis context")
        }
        if made.pointee.err != 0 {
            let reason = String(cString: made.pointee.errstr)
            redisAsyncFree(made)
            return connectionFailed(reason)
        }
        context = made
        state = .connecting
        interest = 0
        registeredFD = -1
        let opaque = Unmanaged.passUnretained(self).toOpaque()
        made.pointee.data = opaque
        made.pointee.ev.data = opaque
        made.pointee.ev.addRead = redisHookAddRead
        made.pointee.ev.delRead = redisHookDelRead
        made.pointee.ev.addWrite = redisHookAddWrite
        made.pointee.ev.delWrite = redisHookDelWrite
        made.pointee.ev.cleanup = redisHookCleanup
        // The handshake: AUTH, SELECT, PING; the last reply makes the client ready.
        var steps: [[UInt8]] = []
        if let password = endpoint.password { steps.append(contentsOf: [Array("AUTH".utf8), Array(password.utf8)]) }
        var handshake: [[[UInt8]]] = []
        if !steps.isEmpty { handshake.append(steps) }
        if endpoint.database != 0 { handshake.append([Array("SELECT".utf8), Array(String(endpoint.database).utf8)]) }
        if node != nil { handshake.append([Array("ROLE".utf8)]) }  // the sentinels' answer may be stale
        handshake.append([Array("PING".utf8)])
        for (index, command) in handshake.enumerated() {
            let isLast = index == handshake.count - 1
            sendNow(command, on: made) { [weak self] result in
                guard let self, self.context == made else { return }
                switch result {
                case .success(.error(let message)):
                    self.lastError = "\(command.first.map { String(decoding: $0, as: UTF8.self) } ?? "") failed: \(message)"
                    self.drop(reason: self.lastError)
                case .success(let reply):
                    if let node, command.first == Array("ROLE".utf8), !Self.isMaster(role: reply) {
                        self.lastError = "\(node) is not a master (ROLE); asking the sentinels again"
                        return self.drop(reason: self.lastError)
                    }
                    if isLast { self.becameReady() }
                case .failure:
                    break  // the cleanup hook reports the loss
                }
            }
        }
        releaseHeld(on: made)
    }

    /// Keeps the process's Redis counts for `/metrics` and `/health` (ProcessMetrics).
    private func noteStateChange(from old: State) {
        guard old != state, !quiet else { return }
        if old == .idle && state != .stopped { ProcessMetrics.redisClients += 1 }
        if state == .stopped && old != .idle { ProcessMetrics.redisClients -= 1 }
        if old == .ready { ProcessMetrics.redisClientsReady -= 1 }
        if state == .ready {
            ProcessMetrics.redisClientsReady += 1
            if wasEverReady { ProcessMetrics.counters.redisReconnects += 1 }
            wasEverReady = true
        }
    }

    private func becameReady() {
        state = .ready
        backoff = Self.initialBackoff
        connectedNode = attemptedNode
        if !quiet {
            if let connectedNode {
                log.info("redis.connected", ["client": name, "redis": endpoint.description, "node": connectedNode.description,
                                             "role": "master"])
            } else {
                log.info("redis.connected", ["client": name, "redis": endpoint.description])
            }
            ProcessMetrics.redisNodes[name] = connectedNode.map { "\($0) master" }
                ?? nodeRole.map { "\(Self.nodeName(endpoint)) \($0)" } ?? Self.nodeName(endpoint)
        }
        failures = 0
        republishUnanswered()
        onReady?()
    }

    private func connectionFailed(_ reason: String) {
        lastError = reason
        releaseHeld(on: nil)
        if state == .stopped { return }
        let wasReady = state == .ready
        state = .waiting
        failures += 1
        if let node = attemptedNode { SentinelResolver.resolver(for: endpoint)?.forget(node) }
        attemptedNode = nil
        connectedNode = nil
        if !quiet { ProcessMetrics.redisNodes[name] = nil }
        if !quiet && (wasReady || failures == 1) {
            log.warn("redis.down", ["client": name, "redis": endpoint.description, "error": reason,
                                    "retryMs": String(backoff)])
        }
        retryTimer = EventLoop.current.schedule(afterMilliseconds: backoff) { [weak self] in self?.connect() }
        backoff = min(backoff * 2, Self.maximumBackoff)
    }

    /// Closes the connection from outside hiredis callbacks (on the next loop turn).
    private func drop(reason: String) {
        guard let doomed = context else { return }
        lastError = reason
        EventLoop.current.schedule(afterMilliseconds: 0) { [weak self] in
            guard let self, self.context == doomed else { return }
            redisAsyncFree(doomed)
        }
    }

    // MARK: Event loop hooks

    public func handleEvents(_ events: UInt32) {
        guard let current = context else { return }
        if events & (IOEvents.readable | IOEvents.error | IOEvents.hangUp | IOEvents.readHangUp) != 0 {
            if current.pointee.c.flags & Int32(REDIS_CONNECTED) == 0 {
                redisAsyncHandleRead(current)  // (completes the connect)
            } else {
                // One read of up to 64 KB (see RedisInput), then the replies to their callbacks.
                switch input.read(current.pointee.c.fd, into: current.pointee.c.reader) {
                case .fed: redisProcessCallbacks(current)
                case .nothing: break
                // hiredis reads the end (or the error) again, and closes the connection its way.
                case .closed, .failed: redisAsyncHandleRead(current)
                }
            }
        }
        // The read may have freed the context (its cleanup hook clears `context`).
        if context == current, events & (IOEvents.writable | IOEvents.error) != 0, interest & IOEvents.writable != 0 {
            redisAsyncHandleWrite(current)
        }
    }

    fileprivate func changeInterest(add: UInt32, remove: UInt32) {
        guard let context else { return }
        let wanted = (interest | add) & ~remove
        guard wanted != interest || registeredFD < 0 else { return }
        if wanted & ~interest & IOEvents.writable != 0 { writableWaits += 1 }
        let fd = context.pointee.c.fd
        if registeredFD < 0 {
            guard wanted != 0 else { return }
            do {
                try EventLoop.current.register(fd: fd, events: wanted, handler: self)
                registeredFD = fd
            } catch {
                lastError = "cannot watch the redis socket: \(error)"
                drop(reason: lastError)
                return
            }
        } else {
            EventLoop.current.modify(fd: registeredFD, events: wanted)
        }
        interest = wanted
    }

    /// hiredis is freeing the context: stop watching its fd and plan the reconnect.
    fileprivate func contextCleanup() {
        guard let current = context else { return }
        let reason = current.pointee.err != 0 ? String(cString: current.pointee.errstr) : lastError
        if registeredFD >= 0 { EventLoop.current.unregister(fd: registeredFD) }
        registeredFD = -1
        interest = 0
        context = nil
        connectionFailed(reason.isEmpty ? "connection closed" : reason)
    }

    fileprivate func noteReply() { lastReplyAt = Clock.monotonicNanos() }
    /// When anything last came back on this connection (monotonic nanoseconds).
    public var lastReplyNanos: UInt64 { lastReplyAt }

    /// A `ROLE` reply of a master: `["master", offset, replicas]`.
    nonisolated static func isMaster(role reply: RedisReply) -> Bool {
        guard case .array(let items) = reply, case .string(let role)? = items.first else { return false }
        return role == Array("master".utf8)
    }

    /// The node a plain endpoint names, for `herald status`.
    static func nodeName(_ endpoint: RedisEndpoint) -> String {
        switch endpoint.address {
        case .tcp(let host, let port): return RedisNode(host: host, port: port).description
        case .unix(let path): return path
        case .sentinel(_, let master): return master
        case .cluster(let seeds): return seeds.map(\.description).joined(separator: ",")
        }
    }

}

/// A valid pointer for a zero-length argument (never written to).
private nonisolated(unsafe) let emptyArgument: UnsafePointer<CChar>? = {
    let pointer = UnsafeMutablePointer<CChar>.allocate(capacity: 1)
    pointer.initialize(to: 0)
    return UnsafePointer(pointer)
}()

/// A command waiting for its reply; retained by hiredis (privdata) until its callback.
@LoopActor
final class PendingCommand {
    private var completion: (@LoopActor (Result<RedisReply, RedisError>) -> Void)?
    let sentAt: UInt64
    var timer: LoopTimer?

    init(completion: @escaping @LoopActor (Result<RedisReply, RedisError>) -> Void, sentAt: UInt64) {
        self.completion = completion
        self.sentAt = sentAt
    }

    var isPending: Bool { completion != nil }

    func complete(_ result: Result<RedisReply, RedisError>) {
        guard let completion else { return }
        self.completion = nil
        if case .success = result { ProcessMetrics.counters.redisCommandDuration.observe(nanos: Clock.monotonicNanos() &- sentAt) }
        timer?.cancel()
        timer = nil
        completion(result)
    }
}

/// The task waiting in `RedisClient.command`: resumed once, by the reply or by the
/// task's cancellation, whichever comes first. Loop thread only (a cancellation from
/// elsewhere hops to the loop).
final class ReplyWaiter: @unchecked Sendable {
    var continuation: UnsafeContinuation<RedisReply, any Error>?

    @LoopActor
    func finish(_ result: Result<RedisReply, any Error>) {
        guard let continuation else { return }
        self.continuation = nil
        continuation.resume(with: result)
    }

    func cancel() {
        if EventLoop.current.isLoopThread {
            LoopActor.assumeIsolated { finish(.failure(CancellationError())) }
        } else {
            Task.onLoop { [self] in finish(.failure(CancellationError())) }
        }
    }
}

// MARK: C callbacks (hiredis calls them on the loop thread)

private func client(_ data: UnsafeMutableRawPointer?) -> RedisClient {
    Unmanaged<RedisClient>.fromOpaque(data!).takeUnretainedValue()
}

private let redisHookAddRead: @convention(c) (UnsafeMutableRawPointer?) -> Void = { data in
    nonisolated(unsafe) let data = data
    LoopActor.assumeIsolated { client(data).changeInterest(add: IOEvents.readable, remove: 0) }
}
private let redisHookDelRead: @convention(c) (UnsafeMutableRawPointer?) -> Void = { data in
    nonisolated(unsafe) let data = data
    LoopActor.assumeIsolated { client(data).changeInterest(add: 0, remove: IOEvents.readable) }
}
private let redisHookAddWrite: @convention(c) (UnsafeMutableRawPointer?) -> Void = { data in
    nonisolated(unsafe) let data = data
    LoopActor.assumeIsolated { client(data).writeWanted() }
}
private let redisHookDelWrite: @convention(c) (UnsafeMutableRawPointer?) -> Void = { data in
    nonisolated(unsafe) let data = data
    LoopActor.assumeIsolated { client(data).changeInterest(add: 0, remove: IOEvents.writable) }
}
private let redisHookCleanup: @convention(c) (UnsafeMutableRawPointer?) -> Void = { data in
    nonisolated(unsafe) let data = data
    LoopActor.assumeIsolated { client(data).contextCleanup() }
}

private let redisCommandCallback: @convention(c) (UnsafeMutablePointer<redisAsyncContext>?, UnsafeMutableRawPointer?,
                                                  UnsafeMutableRawPointer?) -> Void = { context, reply, privdata in
    guard let privdata else { return }
    let pending = Unmanaged<PendingCommand>.fromOpaque(privdata).takeRetainedValue()
    nonisolated(unsafe) let reply = reply, context = context
    LoopActor.assumeIsolated {
        if let reply {
            if let data = context?.pointee.data { client(data).noteReply() }
            pending.complete(.success(RedisReply(copying: reply.assumingMemoryBound(to: redisReply.self))))
        } else {
            let reason = context.flatMap { $0.pointee.err != 0 ? String(cString: $0.pointee.errstr) : nil }
                ?? context?.pointee.data.map { client($0).lastError } ?? "connection closed"
            pending.complete(.failure(.disconnected(reason)))
        }
    }
}

private let redisPublishCallback: @convention(c) (UnsafeMutablePointer<redisAsyncContext>?, UnsafeMutableRawPointer?,
                                                  UnsafeMutableRawPointer?) -> Void = { context, reply, _ in
    guard let data = context?.pointee.data else { return }
    let answered = reply != nil
    nonisolated(unsafe) let opaque = data
    LoopActor.assumeIsolated { client(opaque).publishCompleted(answered: answered) }
}
