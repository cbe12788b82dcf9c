import HeraldLoop
import HeraldProtocol

/// One client connection: its protocol state and its queue of bytes to send. Owned by
/// the worker's loop; every field is touched on the loop thread only.
@LoopActor
public final class Connection: EventHandler {
    enum State {
        /// Reading requests.
        case open
        /// Waiting for pending actions before the goodbye (`goodbyeReason`).
        case draining
        /// The goodbye is queued: send what is left, then shut down the sending side.
        case closing
        /// Output done and FIN sent; reading and discarding until the peer closes.
        case lingering
        case closed
    }

    /// Why the connection's input is not being parsed right now; empty: reading normally.
    struct InputHolds: OptionSet, Sendable {
        let rawValue: UInt8
        static let outputBacklog   = InputHolds(rawValue: 1 << 0)  // its output is over the high-water mark
        static let busBacklog      = InputHolds(rawValue: 1 << 1)  // its says outpace the Redis bus
        static let roomOperations  = InputHolds(rawValue: 1 << 2)  // too many room operations in flight
        static let handoff         = InputHolds(rawValue: 1 << 3)  // moving to another worker (Worker+Handoff.swift)
    }

    // The stored properties are ordered by size (pointers and Ints, then the one-byte
    // ones together), and what most connections never use lives in `extras`: at a
    // million connections a host holds, each byte here is a megabyte
    // (docs/performance.md, "A million connections").
    unowned(unsafe) let worker: Worker  // the worker outlives its connections
    let transport: any Transport
    let id: ConnectionID
    let remoteIP: String
    let connectedAt: Int

    // Protocol state.
    @exclusivity(unchecked) var framer: LineFramer
    @exclusivity(unchecked) var messageCount = 0
    @exclusivity(unchecked) var totalActions = 0
    @exclusivity(unchecked) var params = JSONObject()
    /// Rooms in the order joined, with their join times; the first is the current room.
    /// (Recorded by the worker's `Membership`, with the rooms' member lists.)
    @exclusivity(unchecked) var rooms = ConnectionRooms()
    /// The async actions running for this connection (a list through the calls),
    /// cancelled when it closes.
    @exclusivity(unchecked) var runningCalls: ActionCall?
    /// Monotonic ms of the last input (kept only with an idle timeout).
    @exclusivity(unchecked) var lastInputAt = 0

    // Output.
    @exclusivity(unchecked) var output = OutputBuffer()
    @exclusivity(unchecked) var outputSent = 0

    /// The rarely used state, allocated the first time one of it is set.
    @exclusivity(unchecked) private var extras: ConnectionExtras?

    // Counts bounded by the limits (maxPendingActions, room operations, maxParamsBytes),
    // kept in 32 bits; `pendingActions`, `pendingReplies` and `paramBytes` read them.
    @exclusivity(unchecked) private var storedPendingActions: Int32 = 0
    @exclusivity(unchecked) private var storedPendingReplies: Int32 = 0
    @exclusivity(unchecked) private var storedParamBytes: Int32 = 0
    /// The epoll events registered for the fd.
    @exclusivity(unchecked) var registeredEvents: UInt32 = IOEvents.readable | IOEvents.readHangUp
    private let storedRemotePort: UInt16
    @exclusivity(unchecked) var state = State.open
    /// Set by `Worker.holdInput`: while not empty, input is neither parsed nor read.
    @exclusivity(unchecked) var inputHolds: InputHolds = []
    /// Why it closed, for `herald_connections_closed_total` (set where the close is logged).
    @exclusivity(unchecked) var closeReason = CloseReason.client
    /// The client asked to quit: later lines are ignored.
    @exclusivity(unchecked) var isQuitting = false
    /// The client half-closed (end of file): what it sent is answered, then it is closed.
    @exclusivity(unchecked) var inputEnded = false
    @exclusivity(unchecked) var isQueuedForResume = false
    @exclusivity(unchecked) var isQueuedForFlush = false
    @exclusivity(unchecked) var isWatchingWritable = false
    /// The client stopped reading and its queue passed `maxOutputBytes`: it is dropped.
    @exclusivity(unchecked) var isOverflowing = false

    var remotePort: Int { Int(storedRemotePort) }
    var pendingActions: Int {
        get { Int(storedPendingActions) }
        set { storedPendingActions = Int32(truncatingIfNeeded: newValue) }
    }
    /// Replies still owed besides actions (verbs waiting on Redis): the connection is
    /// not closed after a half-close until they are sent.
    var pendingReplies: Int {
        get { Int(storedPendingReplies) }
        set { storedPendingReplies = Int32(truncatingIfNeeded: newValue) }
    }
    var paramBytes: Int {
        get { Int(storedParamBytes) }
        set { storedParamBytes = Int32(truncatingIfNeeded: newValue) }
    }

    /// `extras`, made when first needed.
    private var madeExtras: ConnectionExtras {
        if let extras { return extras }
        let made = ConnectionExtras()
        extras = made
        return made
    }

    /// Why the connection is draining: the goodbye it gets once its actions replied.
    var goodbyeReason: String? {
        get { extras?.goodbyeReason }
        set { if newValue != nil || extras != nil { madeExtras.goodbyeReason = newValue } }
    }
    /// Monotonic ms when the unfinished line began (0: none), and `framer.linesStarted` then.
    var lineStartedAt: Int {
        get { extras?.lineStartedAt ?? 0 }
        set { if newValue != 0 || extras != nil { madeExtras.lineStartedAt = newValue } }
    }
    var lineStartCount: UInt {
        get { extras?.lineStartCount ?? 0 }
        set { if newValue != 0 || extras != nil { madeExtras.lineStartCount = newValue } }
    }
    /// Monotonic ms of the last output progress while the input is held for the output backlog.
    var lastOutputProgressAt: Int {
        get { extras?.lastOutputProgressAt ?? 0 }
        set { if newValue != 0 || extras != nil { madeExtras.lastOutputProgressAt = newValue } }
    }
    /// Set on a connection adopted in a handoff while its chat catches up (Worker+ChatHandoff.swift).
    var chatCatchUp: ChatCatchUp? {
        get { extras?.chatCatchUp }
        set { if newValue != nil || extras != nil { madeExtras.chatCatchUp = newValue } }
    }
    var lingerTimer: LoopTimer? {
        get { extras?.lingerTimer }
        set { if newValue != nil || extras != nil { madeExtras.lingerTimer = newValue } }
    }
    /// After the client's FIN: when its owed replies are given up (`halfClosedWaitLimit`).
    var halfCloseTimer: LoopTimer? {
        get { extras?.halfCloseTimer }
        set { if newValue != nil || extras != nil { madeExtras.halfCloseTimer = newValue } }
    }
    var overflowDetail: String {
        get { extras?.overflowDetail ?? "" }
        set { if !newValue.isEmpty || extras != nil { madeExtras.overflowDetail = newValue } }
    }
    /// `file` replies queued ahead of `output`, each after the output queued before it
    /// (PublicDirectory.swift); their output and a small cost each is `fileQueueBytes`.
    var files: [PendingFile] {
        get { extras?.files ?? [] }
        _modify { yield &madeExtras.files }
    }
    var fileQueueBytes: Int {
        get { extras?.fileQueueBytes ?? 0 }
        set { if newValue != 0 || extras != nil { madeExtras.fileQueueBytes = newValue } }
    }

    init(worker: Worker, transport: any Transport, id: ConnectionID, remoteIP: String, remotePort: Int, maxLineBytes: Int,
         connectedAt: Int? = nil) {
        self.worker = worker
        self.transport = transport
        self.id = id
        self.remoteIP = remoteIP
        self.storedRemotePort = UInt16(truncatingIfNeeded: remotePort)
        self.connectedAt = connectedAt ?? Clock.wallMillis()
        self.framer = LineFramer(maxLineBytes: maxLineBytes)
        self.lastInputAt = Clock.monotonicMillis
    }

    var fd: Int32 { transport.fd }
    var isOpen: Bool { state == .open || state == .draining }
    /// Whether lines from the client are still handled.
    var acceptsLines: Bool { isOpen && !isQuitting }
    var currentRoom: String? { rooms.current }
    var pendingOutputBytes: Int { output.count - outputSent + fileQueueBytes }

    func isMember(of room: String) -> Bool { rooms.contains(room) }

    /// Whether the socket is read: not while the input is held, nor after its end.
    var wantsInput: Bool {
        switch state {
        case .open, .draining: return inputHolds.isEmpty && !inputEnded
        case .closing, .lingering: return !inputEnded
        case .closed: return false
        }
    }

    public func handleEvents(_ events: UInt32) {
        if events & (IOEvents.readable | IOEvents.hangUp | IOEvents.error) != 0 {
            if wantsInput {
                worker.readable(self)
            } else if events & (IOEvents.hangUp | IOEvents.error) != 0 {
                // Not reading (held, or after a half-close), but the socket failed.
                worker.drop(self, reason: SocketStatus.pendingError(fd).map { "socket error: \($0)" } ?? "connection reset")
                return
            }
        }
        if events & IOEvents.writable != 0 && state != .closed {
            // A read that was waiting for the socket to drain (TLS) is retried first.
            if transport.needsWritableToRead { worker.readable(self) }
            if state != .closed { flush() }
        }
    }

    var details: ConnectionDetails {
        ConnectionDetails(id: id.string, remoteIP: remoteIP, remotePort: remotePort, connectedAt: connectedAt)
    }

    // MARK: Sending

    /// Appends one line to the output queue through `write`. A client whose queue is
    /// already over `maxOutputBytes` is not reading: it is dropped (with a log line) and
    /// its queue freed. A line that alone is bigger than `maxOutputBytes` is not queued:
    /// `tooBig` writes a short error instead when given; otherwise the client is
    /// dropped. So a queue never holds more than `maxOutputBytes` plus one line.
    func send(_ write: (inout [UInt8]) -> Void) {
        append(write, hasFallback: false) { _, _ in }
    }

    /// `send`, with `tooBig(&output, lineBytes)` writing what the client gets instead of
    /// a line bigger than `maxOutputBytes` (an error reply with the same messageCount).
    func send(_ write: (inout [UInt8]) -> Void, tooBig: (inout [UInt8], Int) -> Void) {
        append(write, hasFallback: true, tooBig)
    }

    /// Encodes the line into the worker's scratch array, checks its size, and queues it.
    private func append(_ write: (inout [UInt8]) -> Void, hasFallback: Bool, _ tooBig: (inout [UInt8], Int) -> Void) {
        guard acceptsOutput() else { return }
        var line = worker.takeLineScratch()
        defer { worker.returnLineScratch(&line) }
        write(&line)
        let lineBytes = line.count
        if lineBytes > worker.configuration.maxOutputBytes {
            log.warn("output.lineTooBig", ["id": id.string, "bytes": String(lineBytes),
                                           "maxOutputBytes": String(worker.configuration.maxOutputBytes)])
            guard hasFallback else { return overflow(line: lineBytes) }
            line.removeAll(keepingCapacity: true)
            tooBig(&line, lineBytes)
        }
        guard !line.isEmpty else { return queueForFlush() }
        if !output.hasStorage { output = worker.outputBuffers.take() }
        output.append(line)
        queueForFlush()
    }

    /// An action's reply (`ReplyWriter.actionReply`): a small one is written in place in
    /// the output buffer (it needs no line check: `smallReplyBytes`, 512, is under the
    /// smallest `maxOutputBytes`, 1,024), any other goes through `send(_:tooBig:)`.
    func sendActionReply(fields: JSONObject, error: String?, messageCount: Int) {
        guard acceptsOutput() else { return }
        if !output.hasStorage { output = worker.outputBuffers.take() }
        let written = output.appendInPlace(room: ReplyWriter.smallReplyBytes) {
            ReplyWriter.smallActionReply(fields: fields, error: error, messageCount: messageCount, into: $0)
        }
        if written > 0 { return queueForFlush() }
        let maxOutputBytes = worker.configuration.maxOutputBytes
        send({ ReplyWriter.actionReply(fields: fields, error: error, messageCount: messageCount, to: &$0) },
             tooBig: { Worker.actionReplyTooBig($1, messageCount: messageCount, maxOutputBytes: maxOutputBytes, to: &$0) })
    }

    /// Appends bytes already encoded (a chat line, shared by every member of a room).
    /// A line bigger than `maxOutputBytes` is not delivered.
    func send(raw bytes: UnsafeRawBufferPointer) {
        guard acceptsOutput() else { return }
        guard bytes.count <= worker.configuration.maxOutputBytes else {
            log.warn("output.lineTooBig", ["id": id.string, "bytes": String(bytes.count),
                                           "maxOutputBytes": String(worker.configuration.maxOutputBytes)])
            return
        }
        if !output.hasStorage { output = worker.outputBuffers.take() }
        output.append(bytes)
        queueForFlush()
    }

    /// Appends a file body: raw bytes, not a line, so not bound by the line check.
    func send(body bytes: [UInt8]) {
        guard acceptsOutput() else { return }
        if !output.hasStorage { output = worker.outputBuffers.take() }
        output.append(bytes)
        queueForFlush()
    }

    /// False when nothing more may be queued; drops a client whose queue is past the limit.
    private func acceptsOutput() -> Bool {
        guard state != .closed && state != .lingering && !isOverflowing else { return false }
        if pendingOutputBytes > worker.configuration.maxOutputBytes {
            overflow(line: 0)
            return false
        }
        return true
    }

    /// The client does not read (or a line cannot be sent): its queue is freed now, and
    /// it is dropped at the end of this loop iteration, not here: `send` may be called
    /// while the worker walks a room's members, which the drop would change.
    private func overflow(line: Int) {
        isOverflowing = true
        overflowDetail = line > 0
            ? "a \(line)-byte line is over maxOutputBytes (\(worker.configuration.maxOutputBytes))"
            : "output queue over maxOutputBytes (\(worker.configuration.maxOutputBytes)); the client is not reading"
        worker.outputBuffers.give(&output)
        outputSent = 0
        worker.dropAfterThisIteration(self)
    }

    /// Flushes in the loop's before-sleep pass (in its slices), even with nothing new
    /// queued: a connection now closing finishes there.
    func scheduleFlush() {
        guard state != .closed else { return }
        queueForFlush()
    }

    private func queueForFlush() {
        if !isQueuedForFlush {
            isQueuedForFlush = true
            worker.flushQueue.append(self)
        }
    }

    @exclusivity(unchecked) var isReadScheduled = false

    /// Writes as much of the queue as the socket takes.
    func flush() {
        defer { if transport.hasBufferedInput { scheduleRead() } }
        if !files.isEmpty && !flushFiles() { return }
        while outputSent < output.count {
            let result = output.withBytes(from: outputSent) { transport.write($0) }
            switch result {
            case .bytes(let n):
                outputSent += n
                if !inputHolds.isEmpty { lastOutputProgressAt = Clock.monotonicMillis }
            case .wouldBlock:
                // A TLS write waiting for the peer's handshake is retried after the next read.
                watchWritable(!transport.writeWaitsForReadable || transport.needsWritableToRead)
                // The part already sent is let go once it is most of the buffer, so a
                // client that reads slowly but steadily does not grow it.
                if outputSent >= 65_536 && outputSent * 2 >= output.count {
                    output.removeFirst(outputSent)
                    outputSent = 0
                }
                outputDrained()
                return
            case .closed, .failed:
                worker.drop(self, reason: transport.failureReason ?? "write failed")
                return
            }
        }
        worker.outputBuffers.give(&output)
        outputSent = 0
        watchWritable(transport.needsWritableToRead)
        outputDrained()
        if state == .closing { finishClosing() }
    }

    /// Input held for the output backlog is released once the queue is below the low-water mark.
    private func outputDrained() {
        if inputHolds.contains(.outputBacklog) && pendingOutputBytes <= worker.outputLowWater {
            worker.releaseInput(self, .outputBacklog)
        }
    }

    /// Input a write left in the transport's buffer (TLS read-ahead during a handshake)
    /// is read on the next loop turn: epoll will not report it.
    private func scheduleRead() {
        guard !isReadScheduled, state != .closed else { return }
        isReadScheduled = true
        EventLoop.current.schedule(afterMilliseconds: 0) { [weak self] in
            guard let self else { return }
            self.isReadScheduled = false
            if self.state != .closed { self.worker.readable(self) }
        }
    }

    func watchWritable(_ on: Bool) {
        guard on != isWatchingWritable, state != .closed else { return }
        isWatchingWritable = on
        updateInterest()
    }

    /// Registers the epoll events the connection needs now: readable unless its input is
    /// held or ended, writable while output waits for the socket.
    func updateInterest() {
        guard state != .closed else { return }
        let events = (wantsInput ? IOEvents.readable | IOEvents.readHangUp : 0) | (isWatchingWritable ? IOEvents.writable : 0)
        guard events != registeredEvents else { return }
        registeredEvents = events
        EventLoop.current.modify(fd: fd, events: events)
    }

    /// Once the goodbye is out: FIN, then wait (bounded) for the peer to close, so that
    /// unread input does not turn the close into a reset that could eat the goodbye.
    private func finishClosing() {
        state = .lingering
        transport.shutdownOutput()
        // After the client's own end of input there is nothing left to wait for.
        if inputEnded { return worker.release(self) }
        lingerTimer = EventLoop.current.schedule(afterMilliseconds: 2_000) { [weak self] in
            guard let self, self.state == .lingering else { return }
            self.worker.release(self)
        }
    }
}

/// What a connection rarely needs (see `Connection.extras`): a goodbye on its way, a line
/// arriving in pieces, an output backlog, timers of its closing, queued files, a handoff's
/// chat catch-up.
@LoopActor
final class ConnectionExtras {
    @exclusivity(unchecked) var goodbyeReason: String?
    @exclusivity(unchecked) var lineStartedAt = 0
    @exclusivity(unchecked) var lineStartCount: UInt = 0
    @exclusivity(unchecked) var lastOutputProgressAt = 0
    @exclusivity(unchecked) var chatCatchUp: ChatCatchUp?
    @exclusivity(unchecked) var lingerTimer: LoopTimer?
    @exclusivity(unchecked) var halfCloseTimer: LoopTimer?
    @exclusivity(unchecked) var overflowDetail = ""
    @exclusivity(unchecked) var files: [PendingFile] = []
    @exclusivity(unchecked) var fileQueueBytes = 0
}
