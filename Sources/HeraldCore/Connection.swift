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

    unowned(unsafe) let worker: Worker  // the worker outlives its connections
    let transport: any Transport
    let id: ConnectionID
    let remoteIP: String
    let remotePort: Int
    let connectedAt: Int
    var state = State.open
    /// Why the connection is draining: the goodbye it gets once its actions replied.
    var goodbyeReason: String?
    /// The client asked to quit: later lines are ignored.
    var isQuitting = false

    // Protocol state.
    var framer: LineFramer
    var messageCount = 0
    var totalActions = 0
    var pendingActions = 0
    var params = JSONObject()
    var paramBytes = 0
    /// Rooms in the order joined, with their join times; the first is the current room.
    /// (Recorded by the worker's `Membership`, with the rooms' member lists.)
    var rooms = ConnectionRooms()

    // Output.
    var output: [UInt8] = []
    var outputSent = 0
    var isQueuedForFlush = false
    var isWatchingWritable = false
    var lingerTimer: LoopTimer?
    /// The client stopped reading and its queue passed `maxOutputBytes`: it is dropped.
    var isOverflowing = false

    init(worker: Worker, transport: any Transport, id: ConnectionID, remoteIP: String, remotePort: Int, maxLineBytes: Int) {
        self.worker = worker
        self.transport = transport
        self.id = id
        self.remoteIP = remoteIP
        self.remotePort = remotePort
        self.connectedAt = Clock.wallMillis()
        self.framer = LineFramer(maxLineBytes: maxLineBytes)
    }

    var fd: Int32 { transport.fd }
    var isOpen: Bool { state == .open || state == .draining }
    /// Whether lines from the client are still handled.
    var acceptsLines: Bool { isOpen && !isQuitting }
    var currentRoom: String? { rooms.current }
    var pendingOutputBytes: Int { output.count - outputSent }

    func isMember(of room: String) -> Bool { rooms.contains(room) }

    public func handleEvents(_ events: UInt32) {
        if events & (IOEvents.readable | IOEvents.hangUp | IOEvents.error) != 0 {
            worker.readable(self)
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

    /// Appends to the output queue through `write` unless the queue is over the limit,
    /// in which case the connection is dropped (a client that does not read).
    func send(_ write: (inout [UInt8]) -> Void) {
        guard state != .closed && state != .lingering && !isOverflowing else { return }
        if pendingOutputBytes > worker.configuration.maxOutputBytes {
            // Dropped at the end of this loop iteration, not here: `send` may be called
            // while the worker walks a room's members, which the drop would change.
            isOverflowing = true
            worker.dropAfterThisIteration(self)
            return
        }
        // An idle connection holds no output buffer; a busy one borrows one from the
        // worker's pool, with room for a batch of replies.
        if output.capacity == 0 { output = worker.outputBuffers.take() }
        write(&output)
        if !isQueuedForFlush {
            isQueuedForFlush = true
            worker.flushQueue.append(self)
        }
    }

    func send(raw bytes: UnsafeRawBufferPointer) { send { $0.append(contentsOf: bytes) } }

    var isReadScheduled = false

    /// Writes as much of the queue as the socket takes.
    func flush() {
        defer { if transport.hasBufferedInput { scheduleRead() } }
        while outputSent < output.count {
            let result = output.withBytes { transport.write(UnsafeRawBufferPointer(rebasing: $0[outputSent...])) }
            switch result {
            case .bytes(let n): outputSent += n
            case .wouldBlock:
                // A TLS write waiting for the peer's handshake is retried after the next read.
                watchWritable(!transport.writeWaitsForReadable || transport.needsWritableToRead)
                return
            case .closed, .failed:
                worker.drop(self, reason: transport.failureReason ?? "write failed")
                return
            }
        }
        worker.outputBuffers.give(&output)
        outputSent = 0
        watchWritable(transport.needsWritableToRead)
        if state == .closing { finishClosing() }
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

    private func watchWritable(_ on: Bool) {
        guard on != isWatchingWritable, state != .closed else { return }
        isWatchingWritable = on
        EventLoop.current.modify(fd: fd, events: IOEvents.readable | IOEvents.readHangUp | (on ? IOEvents.writable : 0))
    }

    /// Once the goodbye is out: FIN, then wait (bounded) for the peer to close, so that
    /// unread input does not turn the close into a reset that could eat the goodbye.
    private func finishClosing() {
        state = .lingering
        transport.shutdownOutput()
        lingerTimer = EventLoop.current.schedule(afterMilliseconds: 2_000) { [weak self] in
            guard let self, self.state == .lingering else { return }
            self.worker.release(self)
        }
    }
}
