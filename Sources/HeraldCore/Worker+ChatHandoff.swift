import HeraldLoop

// Chat across a handoff: a member moving from the old worker O to its successor S hears
// every message of its rooms exactly once and in order. Every bus message has an identity
// (origin worker + that worker's sequence number, BusFrame), and both workers receive a
// room's channel in the same order (one Redis channel per room).
//
// 1. O sends S the rooms its connections are in; S subscribes to them and from then on
//    keeps every message of those rooms (`buffers`), then says so.
// 2. O publishes a marker in each room and waits for its echo: from then on, O's position
//    in each room's stream is past S's subscription, so S holds everything after it.
// 3. Each session carries, per room, the last message O processed (`cursors`), and the
//    last sequence number O published (O's own says are delivered by O at once, before
//    their echo). S delivers to the adopted member exactly the buffered messages after
//    the cursor, minus O's own ones it already had; later messages come live, with the
//    same rule (and if S's stream lags O's, the member waits for the cursor to pass).
// 4. While S has adopted members catching up in a room, S's own says in it reach S's
//    members through their echo rather than at once (`echoWindows`), so everyone on S
//    hears them at their place in the stream.
@LoopActor
final class ChatHandoff {
    struct Position: Equatable {
        var origin: [UInt8]
        var sequence: UInt64
    }

    private struct Buffered {
        let position: Position
        let isMarker: Bool
        let line: [UInt8]
    }

    unowned let worker: Worker
    // The old worker's side.
    var tracking = false
    private(set) var positions: [String: Position] = [:]
    var awaitedMarkers: [String: UInt64] = [:]
    var onMarkersSeen: (@LoopActor () -> Void)?
    // The successor's side.
    private var buffers: [String: [Buffered]] = [:]
    /// Rooms whose own messages are delivered from their echo: those with sequence numbers
    /// in (from, until] (`until` is .max while members still arrive).
    private var echoWindows: [String: (from: UInt64, until: UInt64)] = [:]
    /// Who said the own messages delivered from their echo (not sent back to them).
    private var ownSenders: [UInt64: ObjectIdentifier] = [:]
    private var preSubscribed: Set<String> = []
    private var catchingUp: [Connection] = []
    private var finishTimer: LoopTimer?
    private var finished = false

    /// How long after the last handoff channel closed the successor keeps its buffers and
    /// catch-up rules (messages O published before the cutover have long arrived by then).
    static let lingerMilliseconds = 3_000

    init(worker: Worker) { self.worker = worker }

    // MARK: Messages

    func received(room: String, line: UnsafeRawBufferPointer, _ message: BusMessage) {
        if tracking {
            positions[room] = Position(origin: Array(message.origin), sequence: message.sequence)
            if message.isOwn && message.isMarker && awaitedMarkers[room] == message.sequence {
                awaitedMarkers[room] = nil
                if awaitedMarkers.isEmpty, let seen = onMarkersSeen {
                    onMarkersSeen = nil
                    seen()
                }
            }
        }
        if buffers[room] != nil {
            buffers[room]!.append(Buffered(position: Position(origin: Array(message.origin), sequence: message.sequence),
                                           isMarker: message.isMarker, line: Array(line)))
        }
        if message.isMarker { return }
        if message.isOwn {
            let sender = ownSenders.removeValue(forKey: message.sequence)
            guard let window = echoWindows[room], message.sequence > window.from, message.sequence <= window.until else { return }
            deliver(room: room, line: line, message, except: sender)
            if message.sequence >= window.until {
                echoWindows[room] = nil
                endIfDone()
            }
            return
        }
        deliver(room: room, line: line, message, except: nil)
    }

    private func deliver(room: String, line: UnsafeRawBufferPointer, _ message: BusMessage, except sender: ObjectIdentifier?) {
        guard let members = worker.membership.members(of: room) else { return }
        var delivered = 0
        members.forEach { member in
            guard member.isOpen, ObjectIdentifier(member) != sender else { return }
            if let catchUp = member.chatCatchUp, !catchUp.accepts(room: room, origin: message.origin, sequence: message.sequence) { return }
            member.send(raw: line)
            delivered += 1
        }
        ProcessMetrics.counters.chatDeliveries += delivered
    }

    /// Whether a say of this worker in `room` reaches its members through the echo.
    func deliversFromEcho(_ room: String) -> Bool { echoWindows[room]?.until == .max }

    func noteOwnSay(sequence: UInt64, sender: Connection?) {
        if let sender { ownSenders[sequence] = ObjectIdentifier(sender) }
    }

    // MARK: Successor

    /// O named the rooms its connections are in: keep their messages from now on.
    func expect(rooms: [String]) {
        finishTimer?.cancel()
        finishTimer = nil
        for room in rooms {
            if buffers[room] == nil { buffers[room] = [] }
            if echoWindows[room] == nil { echoWindows[room] = (worker.bus.lastPublishedSequence, .max) }
            if !preSubscribed.contains(room) {
                preSubscribed.insert(room)
                worker.membership.beginJoin(room)
            }
        }
    }

    /// A member arrived: what followed its cursor in each room, then the live messages.
    func adopted(_ connection: Connection, session: Session) {
        let catchUp = ChatCatchUp(skipOrigin: session.chatOrigin, skipUpTo: session.chatSequence)
        for cursor in session.cursors {
            guard let buffer = buffers[cursor.room] else { continue }
            let position = Position(origin: cursor.origin, sequence: cursor.sequence)
            let start: Int
            if let found = buffer.lastIndex(where: { $0.position == position }) {
                start = found + 1
            } else if let later = buffer.firstIndex(where: { $0.position.origin == position.origin && $0.position.sequence > position.sequence }) {
                // The cursor is older than this worker's buffer (the two did not synchronize
                // in time): deliver from the first later message of the cursor's origin.
                log.warn("handoff.chat.cursor.missed", ["room": cursor.room, "id": connection.id.string])
                start = later
            } else {
                // This worker's stream is behind O's: the member waits for the cursor.
                catchUp.waiting[cursor.room] = position
                continue
            }
            for message in buffer[start...] where !message.isMarker {
                if message.position.origin == catchUp.skipOrigin && message.position.sequence <= catchUp.skipUpTo { continue }
                message.line.withBytes { connection.send(raw: $0) }
            }
        }
        connection.chatCatchUp = catchUp
        catchingUp.append(connection)
    }

    /// Every handoff channel closed: after a while, back to delivering as usual.
    func channelsClosed() {
        guard finishTimer == nil else { return }
        finishTimer = EventLoop.current.schedule(afterMilliseconds: Self.lingerMilliseconds) { [weak self] in
            self?.finishTimer = nil
            self?.finish()
        }
    }

    private func finish() {
        buffers.removeAll()
        for connection in catchingUp { connection.chatCatchUp = nil }
        catchingUp.removeAll()
        for room in preSubscribed {
            worker.membership.endJoin(room)
            if worker.membership.interest(in: room) == 0 { worker.bus.roomVacated(room) }
        }
        preSubscribed.removeAll()
        // Own says made until now still come from their echo; later ones at once.
        let last = worker.bus.lastPublishedSequence
        for (room, window) in echoWindows {
            if last <= window.from { echoWindows[room] = nil } else { echoWindows[room] = (window.from, last) }
        }
        finished = true
        endIfDone()
    }

    private func endIfDone() {
        guard finished, echoWindows.isEmpty, !tracking else { return }
        ownSenders.removeAll()
        if worker.chatHandoff === self { worker.chatHandoff = nil }
    }
}

/// An adopted member's rule while it catches up: O's own messages up to the one it had
/// are not delivered again; in a room where this worker's stream was behind O's, nothing
/// is delivered until the cursor passes.
@LoopActor
final class ChatCatchUp {
    let skipOrigin: [UInt8]
    let skipUpTo: UInt64
    var waiting: [String: ChatHandoff.Position] = [:]

    init(skipOrigin: [UInt8], skipUpTo: UInt64) {
        self.skipOrigin = skipOrigin
        self.skipUpTo = skipUpTo
    }

    func accepts(room: String, origin: UnsafeRawBufferPointer, sequence: UInt64) -> Bool {
        if let cursor = waiting[room] {
            if cursor.sequence == sequence && cursor.origin.withBytes({ $0.hasSameBytes(as: origin) }) { waiting[room] = nil }
            return false
        }
        return !(sequence <= skipUpTo && skipOrigin.withBytes { $0.hasSameBytes(as: origin) })
    }
}
