import CHiredis
import Glibc
import HeraldCore
import HeraldLoop

/// A pub/sub connection that keeps a set of channels subscribed across reconnects: the
/// subscription state machine apart from the command connection. It speaks through
/// hiredis's non-blocking context and reader directly (not its async API, whose
/// callback table knows SUBSCRIBE but not Redis 7's SSUBSCRIBE), so the verbs are a
/// parameter: `SSUBSCRIBE`/`SUNSUBSCRIBE` and `smessage` for a cluster shard.
///
/// - One command in flight per channel (as in `RedisClient`); replies that confirm a
///   channel are matched by name, error replies (`MOVED` on a shard that lost the slot)
///   by order, and reported through `onRedirect` so the owner re-homes the channel.
/// - A `sunsubscribe` Redis sends by itself (the slot moved away) is reported too.
/// - Reconnects after 100 ms doubling to 2 s; a lost connection fails the waiters. A
///   subscription unconfirmed within the command timeout while nothing at all came in
///   since it was asked for drops the connection (it is stuck) and reconnects.
/// - Counted in the process's Redis clients (`/health`, `/metrics`) like `RedisClient`.
/// - A `redis-sentinel://` endpoint: like `RedisClient`, each connect asks the process's
///   `SentinelResolver` for the master and the handshake's `ROLE` refuses a node that is
///   not one (a replica accepts SUBSCRIBE but hears no PUBLISH made on the master); a
///   `+switch-master` reconnects it to the new master.
@LoopActor
public final class RedisSubscriber: EventHandler, RedisSubscriptions {
    public let endpoint: RedisEndpoint
    public let name: String
    public let commandTimeout: Int
    public var onMessage: (@LoopActor (_ channel: UnsafeRawBufferPointer, _ payload: UnsafeRawBufferPointer) -> Void)?
    public var onMessagesEnd: (@LoopActor () -> Void)?
    /// A subscription was refused with a redirect or dropped by Redis (the slot moved).
    var onRedirect: (@LoopActor (_ channel: String) -> Void)?
    public private(set) var lastError = "not connected yet"

    enum Phase { case idle, connecting, handshaking, ready, waiting, stopped }
    private(set) var phase: Phase = .idle {
        didSet { noteStateChange(from: oldValue) }
    }
    private var wasEverReady = false
    private var failures = 0
    private var lastReadAt: UInt64 = 0
    private let input = RedisInput()
    public var isReady: Bool { phase == .ready }
    /// When anything last came in on this connection (monotonic nanoseconds).
    public var lastReplyNanos: UInt64 { lastReadAt }
    /// Sentinel endpoints: the master connected to (nil otherwise, and while not ready),
    /// the node being tried, and whether the sentinels are being asked now.
    public private(set) var connectedNode: RedisNode?
    private var attemptedNode: RedisNode?
    var resolving = false
    /// No logs and no process counts (the sentinel resolver's watch connection).
    var quiet = false

    private let subscribeVerb: [UInt8]
    private let unsubscribeVerb: [UInt8]
    private let messageKind: [UInt8]
    private let confirmKind: [UInt8]
    private let dropKind: [UInt8]

    private var context: UnsafeMutablePointer<redisContext>?
    private var fd: Int32 = -1
    private var interest: UInt32 = 0
    /// The handshake's commands whose replies are still due, in order (AUTH, ROLE, PING).
    private var handshake: [[UInt8]] = []
    private var backoff = 100
    private var retryTimer: LoopTimer?

    private struct Channel {
        var wanted = false
        var subscribed = false
        var inFlight = false
        var waiters: [SubscriptionWaiter] = []
    }
    private var channels: [String: Channel] = [:]
    /// Channels whose command awaits its reply, in the order sent (to match error replies).
    private var inFlightOrder: [String] = []
    /// Sharded pub/sub (`SSUBSCRIBE`) on a Redis Cluster master.
    private let sharded: Bool

    public init(endpoint: RedisEndpoint, name: String, sharded: Bool, commandTimeout: Int = 2_000) {
        self.endpoint = endpoint
        self.name = name
        self.commandTimeout = commandTimeout
        self.sharded = sharded
        let s = sharded ? "s" : ""
        subscribeVerb = Array("\(s)subscribe".uppercased().utf8)
        unsubscribeVerb = Array("\(s)unsubscribe".uppercased().utf8)
        messageKind = Array("\(s)message".utf8)
        confirmKind = Array("\(s)subscribe".utf8)
        dropKind = Array("\(s)unsubscribe".utf8)
    }

    public func start() {
        guard phase == .idle else { return }
        connect()
    }

    public func stop() {
        guard phase != .stopped else { return }
        phase = .stopped
        if !quiet { ProcessMetrics.redisNodes[name] = nil }
        retryTimer?.cancel()
        closeContext()
        fail(.unavailable("the subscriber is stopped"))
    }

    // MARK: Catching up

    /// What `afterMessagesInFlight` was asked, in order; `catchUpsPassed` of them have had
    /// their PING answered (they run once the read that answered them is delivered).
    private var catchUps: [@LoopActor () -> Void] = []
    private var catchUpsPassed = 0

    /// Calls `done` once every message Redis had sent on this connection when asked has
    /// gone to `onMessage` (and `onMessagesEnd`): a PING in the subscribed stream, whose
    /// answer Redis sends after them. At once when not connected (nothing is on its way);
    /// when the connection is lost or the subscriber stopped meanwhile, then (what was on
    /// its way went with the connection).
    public func afterMessagesInFlight(_ done: @escaping @LoopActor () -> Void) {
        guard phase == .ready, append([Array("PING".utf8)]) else { return done() }
        catchUps.append(done)
        flush()
    }

    private func runPassedCatchUps() {
        guard catchUpsPassed > 0 else { return }
        let passed = catchUps.prefix(catchUpsPassed)
        catchUps.removeFirst(catchUpsPassed)
        catchUpsPassed = 0
        for done in passed { done() }
    }

    private func releaseCatchUps() {
        let waiting = catchUps
        catchUps.removeAll()
        catchUpsPassed = 0
        for done in waiting { done() }
    }

    /// Channels wanted (for tests, logs and re-homing).
    public var wantedChannels: [String] { channels.filter { $0.value.wanted }.map(\.key) }
    public var channelEntryCount: Int { channels.count }

    // MARK: The state machine

    public func subscribe(_ channel: String) -> SubscriptionWaiter? {
        var entry = channels[channel] ?? Channel()
        entry.wanted = true
        if entry.subscribed && !entry.inFlight {
            channels[channel] = entry
            return nil
        }
        let waiter = SubscriptionWaiter()
        if phase == .waiting || phase == .stopped {
            waiter.finish(.unavailable(lastError))
            channels[channel] = entry
            return waiter
        }
        entry.waiters.append(waiter)
        channels[channel] = entry
        let timeout = commandTimeout
        let askedAt = Clock.monotonicNanos()
        waiter.timer = EventLoop.current.schedule(afterMilliseconds: timeout) { [weak self, waiter] in
            // A loop busy past the deadline has not read what came meanwhile: read it first.
            if let self, self.phase == .ready { self.handleEvents(IOEvents.readable) }
            guard !waiter.isFinished else { return }
            waiter.finish(.timeout(timeout))
            guard let self else { return }
            self.forget(waiter, channel: channel)
            if self.context != nil, self.lastReadAt < askedAt { self.dropConnection("no reply within \(timeout) ms") }
        }
        pump(channel)
        return waiter
    }

    public func unsubscribe(_ channel: String) {
        guard var entry = channels[channel] else { return }
        entry.wanted = false
        let waiters = entry.waiters
        entry.waiters.removeAll()
        channels[channel] = entry
        for waiter in waiters { waiter.finish(.unavailable("unsubscribed meanwhile")) }
        pump(channel)
    }

    private func forget(_ waiter: SubscriptionWaiter, channel: String) {
        guard var entry = channels[channel] else { return }
        entry.waiters.removeAll { $0 === waiter }
        channels[channel] = entry
        pump(channel)
    }

    private func pump(_ channel: String) {
        guard var entry = channels[channel] else { return }
        if !entry.wanted && !entry.subscribed && !entry.inFlight && entry.waiters.isEmpty {
            channels[channel] = nil
            return
        }
        guard phase == .ready, !entry.inFlight, entry.wanted != entry.subscribed else { return }
        guard append([entry.wanted ? subscribeVerb : unsubscribeVerb, Array(channel.utf8)]) else { return }
        entry.inFlight = true
        channels[channel] = entry
        inFlightOrder.append(channel)
        flush()
    }

    private func confirmed(_ channel: String, subscribed: Bool) {
        if let index = inFlightOrder.firstIndex(of: channel) { inFlightOrder.remove(at: index) }
        guard var entry = channels[channel] else { return }
        let spontaneous = !entry.inFlight && !subscribed && entry.subscribed
        entry.subscribed = subscribed
        entry.inFlight = false
        if subscribed && entry.wanted {
            for waiter in entry.waiters { waiter.finish(nil) }
            entry.waiters.removeAll()
        }
        channels[channel] = entry
        if spontaneous && entry.wanted {
            // Redis dropped it: the slot moved. The owner finds the new shard.
            onRedirect?(channel)
            return
        }
        pump(channel)
    }

    private func refused(_ message: String) {
        guard !inFlightOrder.isEmpty else { return }
        let channel = inFlightOrder.removeFirst()
        guard var entry = channels[channel] else { return }
        entry.inFlight = false
        let waiters = entry.waiters
        entry.waiters.removeAll()
        channels[channel] = entry
        for waiter in waiters { waiter.finish(.server(message)) }
        log.warn("redis.subscribe.refused", ["client": name, "channel": channel, "error": message])
        onRedirect?(channel)
    }

    private func fail(_ error: RedisError) {
        inFlightOrder.removeAll()
        releaseCatchUps()
        for key in Array(channels.keys) {
            guard var entry = channels[key] else { continue }
            for waiter in entry.waiters { waiter.finish(error) }
            entry.waiters.removeAll()
            entry.subscribed = false
            entry.inFlight = false
            channels[key] = entry.wanted ? entry : nil
        }
    }

    // MARK: The connection

    private func connect() {
        guard phase != .stopped else { return }
        connectToCurrentMaster()
    }

    /// Drops the connection and connects again (to the master the sentinels name now),
    /// without waiting for a pending backoff.
    public func reconnect(reason: String) {
        switch phase {
        case .ready, .connecting, .handshaking: dropConnection(reason)
        case .waiting:
            guard !resolving else { return }
            retryTimer?.cancel()
            backoff = 100
            connect()
        case .idle, .stopped: break
        }
    }

    func connect(to node: RedisNode?) {
        guard phase != .stopped else { return }
        attemptedNode = node
        let made: UnsafeMutablePointer<redisContext>?
        switch endpoint.address {
        case .tcp(let host, let port): made = redisConnectNonBlock(host, Int32(port))
        case .unix(let path): made = redisConnectUnixNonBlock(path)
        case .sentinel: made = node.map { redisConnectNonBlock($0.host, Int32($0.port)) } ?? nil
        case .cluster(let seeds): made = redisConnectNonBlock(seeds[0].host, Int32(seeds[0].port))  // (the sharded subscriber places each shard)
        }
        guard let made else { return lost("cannot allocate a hiredis context") }
        if made.pointee.err != 0 {
            let reason = Self.errorText(made)
            redisFree(made)
            return lost(reason)
        }
        context = made
        fd = made.pointee.fd
        phase = .connecting
        do {
            try EventLoop.current.register(fd: fd, events: IOEvents.readable | IOEvents.writable, handler: self)
            interest = IOEvents.readable | IOEvents.writable
        } catch {
            closeContext()
            return lost("cannot watch the redis socket: \(error)")
        }
    }

    private func connected() {
        var error: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        if getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) != 0 || error != 0 {
            return dropConnection(String(cString: strerror(error)))
        }
        phase = .handshaking
        var steps: [[[UInt8]]] = []
        if let password = endpoint.password { steps.append([Array("AUTH".utf8), Array(password.utf8)]) }
        if attemptedNode != nil { steps.append([Array("ROLE".utf8)]) }  // the sentinels' answer may be stale
        steps.append([Array("PING".utf8)])
        handshake = steps.map { $0[0] }
        for step in steps { _ = append(step) }
        flush()
    }

    private func becameReady() {
        phase = .ready
        backoff = 100
        failures = 0
        connectedNode = attemptedNode
        if !quiet {
            if let connectedNode {
                log.info("redis.connected", ["client": name, "redis": endpoint.description, "node": connectedNode.description,
                                             "role": "master"])
            } else {
                log.info("redis.connected", ["client": name, "redis": endpoint.description])
            }
            // (A sharded subscriber is on a master of the slot map.)
            ProcessMetrics.redisNodes[name] = connectedNode.map { "\($0) master" }
                ?? (sharded ? "\(RedisClient.nodeName(endpoint)) master" : RedisClient.nodeName(endpoint))
        }
        for key in Array(channels.keys) { pump(key) }
    }

    public func handleEvents(_ events: UInt32) {
        guard let context else { return }
        if phase == .connecting {
            guard events & (IOEvents.writable | IOEvents.error | IOEvents.hangUp) != 0 else { return }
            connected()
            return
        }
        if events & (IOEvents.readable | IOEvents.error | IOEvents.hangUp | IOEvents.readHangUp) != 0 {
            // One read of up to 64 KB an event (RedisInput): more would batch so much
            // delivery before the next flush that fan-out latency suffers.
            switch input.read(fd, into: context.pointee.reader) {
            case .fed:
                // (Only when something came: the timers that read first and then judge a
                // connection by it must not see an empty read as a sign of life.)
                lastReadAt = Clock.monotonicNanos()
                let stillConnected = drainReplies()
                onMessagesEnd?()
                if !stillConnected { return }
                runPassedCatchUps()
            case .nothing: break
            case .closed: return dropConnection("Server closed the connection")
            case .failed(let code): return dropConnection(String(cString: strerror(code)))
            }
        }
        if self.context == context, events & IOEvents.writable != 0 { flush() }
    }

    /// Handles every whole reply read; false when the connection was dropped meanwhile.
    private func drainReplies() -> Bool {
        guard let current = context else { return false }
        while context == current {
            var object: UnsafeMutableRawPointer?
            guard redisGetReplyFromReader(current, &object) == REDIS_OK else {
                dropConnection(Self.errorText(current))
                return false
            }
            guard let object else { return true }
            handle(object.assumingMemoryBound(to: redisReply.self))
            freeReplyObject(object)
        }
        return false
    }

    private func handle(_ reply: UnsafePointer<redisReply>) {
        let r = reply.pointee
        if phase == .handshaking {
            let step = handshake.isEmpty ? [] : handshake.removeFirst()
            if r.type == REDIS_REPLY_ERROR {
                return dropConnection("\(String(decoding: step, as: UTF8.self)) failed: "
                                      + String(decoding: RedisReply.bytes(r.str, r.len), as: UTF8.self))
            }
            if let node = attemptedNode, step == Array("ROLE".utf8),
               !RedisClient.isMaster(role: RedisReply(copying: reply)) {
                return dropConnection("\(node) is not a master (ROLE); asking the sentinels again")
            }
            if handshake.isEmpty { becameReady() }
            return
        }
        if r.type == REDIS_REPLY_ERROR {
            return refused(String(decoding: RedisReply.bytes(r.str, r.len), as: UTF8.self))
        }
        // A PING's answer (`afterMessagesInFlight`): `+PONG` with no channel subscribed,
        // `["pong", ""]` in the subscribed stream; nothing else has two elements or a status.
        if r.type == REDIS_REPLY_STATUS || (r.type == REDIS_REPLY_ARRAY && r.elements == 2) {
            catchUpsPassed += 1
            return
        }
        guard r.type == REDIS_REPLY_ARRAY, r.elements >= 3, let kind = r.element[0], let second = r.element[1],
              let third = r.element[2] else { return }
        let kindBytes = UnsafeRawBufferPointer(start: kind.pointee.str, count: kind.pointee.len)
        if kindBytes.elementsEqual(messageKind) {
            onMessage?(UnsafeRawBufferPointer(start: second.pointee.str, count: second.pointee.len),
                       UnsafeRawBufferPointer(start: third.pointee.str, count: third.pointee.len))
            return
        }
        let channel = String(decoding: UnsafeRawBufferPointer(start: second.pointee.str, count: second.pointee.len), as: UTF8.self)
        if kindBytes.elementsEqual(confirmKind) { confirmed(channel, subscribed: true) }
        else if kindBytes.elementsEqual(dropKind) { confirmed(channel, subscribed: false) }
    }

    private func append(_ arguments: [[UInt8]]) -> Bool {
        guard let context else { return false }
        return RedisClient.withArgv(arguments) { argc, argv, lengths in
            redisAppendCommandArgv(context, argc, argv, lengths) == REDIS_OK
        }
    }

    /// Writes what is buffered; watches for writability only while some is left.
    private func flush() {
        guard let context, phase == .handshaking || phase == .ready else { return }
        var done: Int32 = 0
        if redisBufferWrite(context, &done) != REDIS_OK { return dropConnection(Self.errorText(context)) }
        let wanted = done != 0 ? IOEvents.readable : IOEvents.readable | IOEvents.writable
        if wanted != interest {
            EventLoop.current.modify(fd: fd, events: wanted)
            interest = wanted
        }
    }

    private func dropConnection(_ reason: String) {
        closeContext()
        lost(reason)
    }

    private func closeContext() {
        if fd >= 0 { EventLoop.current.unregister(fd: fd) }
        fd = -1
        interest = 0
        if let context { redisFree(context) }  // (closes the socket)
        context = nil
    }

    private func lost(_ reason: String) {
        lastError = reason
        guard phase != .stopped else { return }
        failures += 1
        if let node = attemptedNode { SentinelResolver.resolver(for: endpoint)?.forget(node) }
        attemptedNode = nil
        connectedNode = nil
        if !quiet { ProcessMetrics.redisNodes[name] = nil }
        if !quiet && (phase == .ready || failures == 1) {
            log.warn("redis.down", ["client": name, "redis": endpoint.description, "error": reason, "retryMs": String(backoff)])
        }
        phase = .waiting
        fail(.disconnected(reason))
        retryTimer = EventLoop.current.schedule(afterMilliseconds: backoff) { [weak self] in self?.connect() }
        backoff = min(backoff * 2, 2_000)
    }

    /// Keeps the process's Redis counts for `/metrics` and `/health` (ProcessMetrics).
    private func noteStateChange(from old: Phase) {
        guard old != phase, !quiet else { return }
        if old == .idle && phase != .stopped { ProcessMetrics.redisClients += 1 }
        if phase == .stopped && old != .idle { ProcessMetrics.redisClients -= 1 }
        if old == .ready { ProcessMetrics.redisClientsReady -= 1 }
        if phase == .ready {
            ProcessMetrics.redisClientsReady += 1
            if wasEverReady { ProcessMetrics.counters.redisReconnects += 1 }
            wasEverReady = true
        }
    }

    private static func errorText(_ context: UnsafeMutablePointer<redisContext>) -> String {
        let text = withUnsafeBytes(of: context.pointee.errstr) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        return text.isEmpty ? "connection closed" : text
    }
}

/// Completes when Redis confirms a SUBSCRIBE (or fails: down, lost, timed out).
@LoopActor
public final class SubscriptionWaiter {
    private var result: RedisError??
    private var continuation: UnsafeContinuation<Void, any Error>?
    var timer: LoopTimer?

    /// Waiters that end when this one does (`forward`).
    private var followers: [SubscriptionWaiter] = []

    var isFinished: Bool { result != nil }

    func finish(_ error: RedisError?) {
        guard result == nil else { return }
        result = .some(error)
        timer?.cancel()
        timer = nil
        let followers = self.followers
        self.followers = []
        for follower in followers { follower.finish(error) }
        if let continuation {
            self.continuation = nil
            if let error { continuation.resume(throwing: error) } else { continuation.resume() }
        }
    }

    /// Ends `other` with this waiter's outcome, now if it has one.
    func forward(to other: SubscriptionWaiter) {
        if let result { return other.finish(result) }
        followers.append(other)
    }

    public func wait() async throws {
        if let result {
            if let error = result { throw error }
            return
        }
        try await withUnsafeThrowingContinuation { self.continuation = $0 }
    }
}
