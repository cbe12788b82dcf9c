import Glibc
import HeraldLoop
import HeraldProtocol

/// One worker: its listeners, its connections and everything they share, all on the
/// process's event loop.
@LoopActor
public final class Worker: BeforeSleepHook {
    public let configuration: Configuration
    public let serverID: String
    let startedAt = Clock.wallMillis()
    let actions: ActionRegistry
    let documentation: JSON
    let cache: any Cache
    let bus: any RoomBus
    lazy var services = WorkerServices(worker: self)

    @exclusivity(unchecked) private var listeners: [Listener] = []
    @exclusivity(unchecked) private var connections: [Connection?] = []  // by fd
    @exclusivity(unchecked) private(set) var connectionCount = 0
    /// Room membership on this worker (each connection's rooms, each room's members).
    let membership = Membership()
    /// Connections whose input is held until the bus drains (`.busBacklog`).
    @exclusivity(unchecked) var heldForBus: [Connection] = []
    /// Connections to drop at the end of this iteration (they stopped reading).
    @exclusivity(unchecked) var overflowing: [Connection] = []
    /// Connections with output to write at the end of this loop iteration.
    @exclusivity(unchecked) var flushQueue: [Connection] = []
    /// Chat lines of one room from the bus, delivered together (`Worker.gather`).
    @exclusivity(unchecked) var chatBatch = ChatBatch()
    /// Default-room joins and closing connections' leaves for the bus, sent in `beforeSleep`.
    @exclusivity(unchecked) var membershipBatch = MembershipBatch()
    /// Connections whose input holds were released: their held input is parsed before
    /// this iteration ends.
    @exclusivity(unchecked) var resumeQueue: [Connection] = []
    /// The periodic check of the time limits (`lineTimeout`, `idleTimeout`,
    /// `outputStallTimeout`); nil while nothing needs watching.
    @exclusivity(unchecked) var sweepTimer: LoopTimer?
    @exclusivity(unchecked) private var wakeTimer: LoopTimer?
    /// The action found last, and a finished call kept for reuse (synchronous actions
    /// run one at a time: one is enough).
    @exclusivity(unchecked) var lastAction: Action?
    @exclusivity(unchecked) var spareCall: ActionCall?
    /// The bytes of `lastAction`'s name when a line spelling exactly them is that action
    /// (see `RequestParser.parse(_:knownAction:)`); `knownLineCount` is -1 otherwise.
    let knownLine = UnsafeMutableRawPointer.allocate(byteCount: Worker.knownLineCapacity, alignment: 8)
    @exclusivity(unchecked) var knownLineCount = -1
    nonisolated static var knownLineCapacity: Int { 64 }
    /// Output buffers lent to connections while they have bytes to send.
    @exclusivity(unchecked) var outputBuffers = BufferPool()
    /// Where `Connection.send(_:)` encodes a line before it is checked and queued; kept
    /// between lines (unless a big one grew it), so encoding allocates nothing.
    @exclusivity(unchecked) private var lineScratch: [UInt8] = []
    @exclusivity(unchecked) var random = FastRandom()
    let readBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 65_536, alignment: 16)
    @exclusivity(unchecked) var totalActions = 0
    @exclusivity(unchecked) var pendingActions = 0
    let publicDirectory: PublicDirectory
    let logActions: Bool
    /// The connection.open/close lines, bounded per second (`connectionLogRate`).
    let connectionLog: ConnectionLog

    @exclusivity(unchecked) private(set) var isStopping = false
    /// The connection handoff under way (Worker+Handoff.swift), and the channels on which
    /// connections of replaced workers arrive.
    var handoff: HandoffSender?
    var receivers: [HandoffReceiver] = []
    public internal(set) var handoffCounts = HandoffCounts()
    /// Chat across a handoff (Worker+ChatHandoff.swift): nil unless one is under way.
    var chatHandoff: ChatHandoff?
    @exclusivity(unchecked) private var stopTimer: LoopTimer?
    @exclusivity(unchecked) private var keepAliveTimer: LoopTimer?
    @exclusivity(unchecked) private var onStopped: (@LoopActor () -> Void)?

    public init(configuration: Configuration, actions: ActionRegistry, cache: any Cache, bus: any RoomBus, serverID: String) {
        self.configuration = configuration
        self.actions = actions
        self.documentation = actions.documentation
        self.cache = cache
        self.bus = bus
        self.serverID = serverID
        self.publicDirectory = PublicDirectory(path: configuration.publicDir)
        self.logActions = log.isEnabled(.debug)
        self.connectionLog = ConnectionLog(rate: ConnectionLog.share(of: configuration.connectionLogRate, workers: configuration.workers))
    }

    /// Starts serving on the given listening sockets. `onStopped` runs once every
    /// connection is gone after `stop()`.
    public func start(listening sockets: [ListeningSocket], onStopped: @escaping @LoopActor () -> Void) throws(SystemError) {
        self.onStopped = onStopped
        EventLoop.current.addBeforeSleepHook(self)
        bus.start(membership: membership,
                  deliver: { [unowned self] room, line, message in
                      if let chat = self.chatHandoff {
                          self.deliverChatBatch()
                          return chat.received(room: room, line: line, message)
                      }
                      if !message.isOwn && !message.isMarker { self.gather(room: room, line: line) }
                  },
                  deliveredAll: { [unowned self] in self.deliverChatBatch() },
                  drained: { [unowned self] in self.busDrained() })
        for socket in sockets {
            let listener = Listener(socket: socket, worker: self)
            try listener.start()
            listeners.append(listener)
        }
        if configuration.keepAliveInterval > 0 { scheduleKeepAlive() }
    }

    /// This worker's counts.
    public var statistics: (connections: Int, rooms: Int, totalActions: Int, pendingActions: Int) {
        (connectionCount, membership.roomCount, totalActions, pendingActions)
    }

    /// While stopping, what is left: the connections plus those whose goodbye is not yet
    /// written (open, draining or closing), so it falls with every goodbye sent and every
    /// connection closed (the supervisor's `DrainWatch` reads it as progress); nil before.
    public var stopWork: Int? {
        guard isStopping else { return nil }
        var unsaid = 0
        for case let connection? in connections where connection.state != .lingering && connection.state != .closed {
            unsaid += 1
        }
        return connectionCount + unsaid
    }

    // MARK: Connections

    func accepted(fd: Int32, address: sockaddr_storage, transports: any TransportFactory) {
        let (ip, port) = Sockets.describe(address)
        if isStopping || connectionCount >= configuration.maxConnections {
            var line: [UInt8] = []
            ReplyWriter.goodbye(reason: isStopping ? "server shutdown" : "too many connections", to: &line)
            _ = line.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            close(fd)
            log.warn("connection.refused", ["remote": "\(ip):\(port)", "reason": isStopping ? "stopping" : "maxConnections"])
            return
        }
        Sockets.setNoDelay(fd)
        let transport: any Transport
        do {
            transport = try transports.makeTransport(fd: fd)
        } catch {
            log.warn("connection.refused", ["remote": "\(ip):\(port)", "reason": "\(error)"])
            close(fd)
            return
        }
        let connection = Connection(worker: self, transport: transport, id: ConnectionID(using: &random),
                                    remoteIP: ip, remotePort: port, maxLineBytes: configuration.maxLineBytes)
        do {
            try EventLoop.current.register(fd: fd, events: IOEvents.readable | IOEvents.readHangUp, handler: connection)
        } catch {
            log.error("connection.failed", ["reason": error.description])
            close(fd)
            return
        }
        let index = Int(fd)
        if index >= connections.count {
            connections.append(contentsOf: repeatElement(nil, count: index + 1 - connections.count))
        }
        connections[index] = connection
        connectionCount += 1
        ProcessMetrics.counters.connectionsOpened += 1
        bus.connectionCountChanged(connectionCount)
        connectionLog.opened(connection, remote: "\(ip):\(port)")
        if configuration.idleTimeout > 0 { scheduleSweep() }
        let room = configuration.defaultRoom.isEmpty ? nil : configuration.defaultRoom
        connection.send { ReplyWriter.welcome(configuration.welcomeMessage, room: room, to: &$0) }
        if let room { joinDefaultRoom(connection, room: room) }
    }

    /// Reads what the connection has sent and handles each complete line, until its
    /// input is held (see `holdInput`) or the socket has nothing more.
    func readable(_ connection: Connection) {
        repeat {
            guard connection.wantsInput else { return }
            let result = connection.transport.read(into: readBuffer)
            switch result {
            case .bytes(let count):
                if configuration.idleTimeout > 0 { connection.lastInputAt = Clock.monotonicMillis }
                guard connection.acceptsLines else { return }
                let chunk = UnsafeRawBufferPointer(rebasing: readBuffer[0..<count])
                if TelnetBreak.isBreak(chunk) {
                    sayGoodbye(connection, reason: "break-character")
                    return
                }
                connection.framer.feedHoldable(chunk) { event in parsed(event, from: connection) }
                noteLineProgress(connection)
            case .wouldBlock:
                break
            case .closed:
                if connection.state == .lingering {
                    release(connection)
                } else if let reason = connection.transport.failureReason {
                    // The transport broke (a TLS error or a close without close_notify).
                    drop(connection, reason: reason)
                } else {
                    // A half-close: everything received before it is still answered.
                    inputEnded(connection)
                }
                return
            case .failed(let error):
                drop(connection, reason: connection.transport.failureReason ?? SystemError("read", errno: error).description)
                return
            }
        } while connection.state != .closed && connection.inputHolds.isEmpty && connection.transport.hasBufferedInput
        // A TLS handshake step may have unblocked a write, or wait for the socket to drain.
        let transport = connection.transport
        if connection.state != .closed && (transport.needsWritableToRead || transport.writeWaitsForReadable) {
            connection.flush()
        }
    }

    func lineTooLong(_ connection: Connection) {
        connection.messageCount += 1
        let count = connection.messageCount
        connection.send { ReplyWriter.tooLong(maxLineBytes: configuration.maxLineBytes, messageCount: count, to: &$0) }
    }

    /// Sends the goodbye once the connection's pending actions have replied.
    func sayGoodbyeWhenIdle(_ connection: Connection, reason: String) {
        guard connection.isOpen else { return }
        if connection.goodbyeReason == nil { connection.goodbyeReason = reason }
        connection.state = .draining
        if connection.pendingActions == 0 { sayGoodbye(connection, reason: connection.goodbyeReason ?? reason) }
    }

    /// Sends the goodbye, then closes once it is written.
    func sayGoodbye(_ connection: Connection, reason: String) {
        guard connection.isOpen else { return }
        connection.send { ReplyWriter.goodbye(reason: reason, to: &$0) }
        connection.state = .closing
        cancelActions(of: connection)
        leaveAllRooms(connection)
        connection.closeReason = CloseReason.classify(reason)
        connectionLog.closed(connection, closeFields(connection, reason: reason))
        // Written with the iteration's output, in its slices: a stop says goodbye to every
        // connection at once, and 19,000 inline writes and shutdowns a worker held its
        // loop (timers, reports to the supervisor) for seconds on a loaded host.
        connection.scheduleFlush()
    }

    /// Closes at once (the peer is gone or misbehaving).
    func drop(_ connection: Connection, reason: String) {
        guard connection.state != .closed else { return }
        if connection.isOpen {
            leaveAllRooms(connection)
            connection.closeReason = CloseReason.classify(reason)
            if reason.hasPrefix("output ") { ProcessMetrics.counters.slowConsumerDisconnects += 1 }
            connectionLog.closed(connection, closeFields(connection, reason: reason))
        }
        release(connection)
    }

    /// Frees everything the connection holds.
    func release(_ connection: Connection) {
        guard connection.state != .closed else { return }
        connection.state = .closed
        cancelActions(of: connection)
        connection.lingerTimer?.cancel()
        connection.halfCloseTimer?.cancel()
        EventLoop.current.unregister(fd: connection.fd)
        connections[Int(connection.fd)] = nil
        connection.transport.close()
        connection.closeFiles()
        outputBuffers.give(&connection.output)
        connectionCount -= 1
        ProcessMetrics.counters.connectionsClosed[connection.closeReason.rawValue] += 1
        bus.connectionCountChanged(connectionCount)
        if isStopping && connectionCount == 0 { finishStopping() }
    }

    func closeFields(_ connection: Connection, reason: String) -> KeyValuePairs<String, String> {
        ["id": connection.id.string, "reason": reason, "messages": String(connection.messageCount),
         "actions": String(connection.totalActions), "durationMs": String(Clock.wallMillis() - connection.connectedAt)]
    }

    /// Adds a connection to the worker's table (accepted, or adopted in a handoff).
    func attach(_ connection: Connection) {
        let index = Int(connection.fd)
        if index >= connections.count {
            connections.append(contentsOf: repeatElement(nil, count: index + 1 - connections.count))
        }
        connections[index] = connection
        connectionCount += 1
        bus.connectionCountChanged(connectionCount)
    }

    /// Lets go of a connection sent to a successor: not closed, not left (its rooms'
    /// members move in Redis, not leave); its socket stays open until the successor
    /// acknowledged it (the handoff closes it).
    func detachForHandoff(_ connection: Connection) {
        for room in connection.rooms.names {
            membership.remove(connection, from: room)
            if membership.interest(in: room) == 0 { bus.roomVacated(room) }
        }
        connection.state = .closed
        connection.lingerTimer?.cancel()
        connection.halfCloseTimer?.cancel()
        EventLoop.current.unregister(fd: connection.fd)
        connections[Int(connection.fd)] = nil
        connection.closeFiles()
        outputBuffers.give(&connection.output)
        connection.outputSent = 0
        connectionCount -= 1
        bus.connectionCountChanged(connectionCount)
    }

    // MARK: Output

    /// The scratch array, empty (a fresh one when it is out already: a line encoded
    /// while another is).
    func takeLineScratch() -> [UInt8] {
        var line: [UInt8] = []
        swap(&line, &lineScratch)
        return line
    }

    /// Takes the scratch array back, emptied; one a big line grew is let go.
    func returnLineScratch(_ line: inout [UInt8]) {
        guard line.capacity <= outputBuffers.maxCapacity else { return line = [] }
        line.removeAll(keepingCapacity: true)
        swap(&line, &lineScratch)
    }

    public func beforeSleep() {
        // Flushing may release held input, whose parsing queues more output: a few rounds.
        deliverChatBatch()
        var rounds = 0
        var budget = Self.flushesPerIteration
        repeat {
            if !overflowing.isEmpty {
                let dropped = overflowing
                overflowing.removeAll()
                for connection in dropped { drop(connection, reason: connection.overflowDetail) }
            }
            resumeReleased()
            flushAll(budget: &budget)
            rounds += 1
        } while rounds < 8 && budget > 0 && !(resumeQueue.isEmpty && flushQueue.isEmpty && overflowing.isEmpty)
        flushMembershipBatch()
        if !(resumeQueue.isEmpty && flushQueue.isEmpty && overflowing.isEmpty) && wakeTimer == nil {
            // More to do: keep the loop from sleeping in epoll_wait.
            wakeTimer = EventLoop.current.schedule(afterMilliseconds: 0) { [weak self] in self?.wakeTimer = nil }
        }
    }

    /// Connections written to in one loop iteration at most. A say to a big room queues a
    /// line for each of its members at once; written in slices of this many, the loop
    /// reads, serves requests and runs its timers (the Redis heartbeat, command
    /// timeouts) between slices instead of after every member: on a host busy with tens
    /// of thousands of members a worker, one iteration of all of them took seconds.
    nonisolated static var flushesPerIteration: Int { 1_024 }

    /// Calls `body` with every connection (which may close them).
    func forEachConnection(_ body: (Connection) -> Void) {
        for index in connections.indices {
            if let connection = connections[index] { body(connection) }
        }
    }

    /// Drops a client that does not read, once the current iteration's work is done.
    func dropAfterThisIteration(_ connection: Connection) {
        overflowing.append(connection)
    }

    /// Flushes the queued connections in order, at most `budget` of them (counted down);
    /// the rest stay queued, first, for the next iteration.
    private func flushAll(budget: inout Int) {
        guard !flushQueue.isEmpty else { return }
        // By index, not over a copy: a copy makes `removeAll(keepingCapacity:)` allocate
        // a new buffer every loop iteration. Connections queued while this runs (a drop
        // sending to a room) are flushed in the same pass while the budget lasts.
        var index = 0
        while index < flushQueue.count && budget > 0 {
            let connection = flushQueue[index]
            index += 1
            budget -= 1
            connection.isQueuedForFlush = false
            if connection.state != .closed { connection.flush() }
        }
        if index == flushQueue.count {
            flushQueue.removeAll(keepingCapacity: true)
        } else {
            flushQueue.removeSubrange(0..<index)
        }
    }

    private func scheduleKeepAlive() {
        keepAliveTimer = EventLoop.current.schedule(afterMilliseconds: configuration.keepAliveInterval) { [weak self] in
            guard let self, !self.isStopping else { return }
            let now = Clock.wallMillis()
            for case let connection? in self.connections where connection.isOpen {
                connection.send { ReplyWriter.keepAlive(serverTime: now, to: &$0) }
            }
            self.scheduleKeepAlive()
        }
    }

    // MARK: Stopping

    /// Stops accepting; each connection gets the goodbye once the room messages already
    /// on their way to the worker are delivered and its pending actions have replied (or
    /// `pendingShutdownWaitLimit` has passed).
    public func stop() {
        guard !isStopping else { return }
        isStopping = true
        log.info("server.stopping", ["connections": String(connectionCount)])
        for listener in listeners { listener.stop() }
        keepAliveTimer?.cancel()
        var leaving: [Connection] = []
        for case let connection? in connections where connection.isOpen {
            if let handoff {
                if handoff.take(connection) { continue }
                handoffCounts.drained += 1
            }
            leaving.append(connection)
        }
        // What was said before the stop and is still in Redis or the socket reaches these
        // members before their goodbye (a handed-over connection catches up on its new worker).
        bus.afterMessagesInFlight { [weak self] in
            guard let self else { return }
            self.deliverChatBatch()
            for connection in leaving { self.sayGoodbyeWhenIdle(connection, reason: "server shutdown") }
        }
        stopTimer = EventLoop.current.schedule(afterMilliseconds: configuration.pendingShutdownWaitLimit) { [weak self] in
            guard let self else { return }
            self.handoff?.giveUp(reason: "actions still running at pendingShutdownWaitLimit (\(self.configuration.pendingShutdownWaitLimit) ms)")
            for case let connection? in self.connections where connection.isOpen {
                self.sayGoodbye(connection, reason: connection.goodbyeReason ?? "server shutdown")
            }
        }
        if connectionCount == 0 { finishStopping() }
    }

    /// Called when a connection's last pending action has replied.
    func pendingActionsDrained(_ connection: Connection) {
        if connection.state == .draining, let reason = connection.goodbyeReason { sayGoodbye(connection, reason: reason) }
        closeIfAnswered(connection)
    }

    func finishStopping() {
        guard handoffIsIdle, let onStopped else { return }
        self.onStopped = nil
        stopTimer?.cancel()
        sweepTimer?.cancel()
        sweepTimer = nil
        var everything = Int.max
        flushAll(budget: &everything)
        bus.stop()
        connectionLog.flush()
        log.info("server.stopped", [:])
        onStopped()
    }
}
