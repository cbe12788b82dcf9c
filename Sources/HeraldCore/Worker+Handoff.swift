import Glibc
import HeraldLoop
import HeraldProtocol

// The connection handoff (reload, scale-down): a worker being replaced passes each plain
// TCP connection — its socket and its `Session` — to a successor over a handoff channel,
// instead of saying goodbye. TLS connections keep the goodbye drain: OpenSSL cannot move
// a live TLS session to another process in user space (only kernel TLS could, and it is
// not offered here).
//
// Old worker, per connection: its input is held (unread bytes stay in the kernel), then
// once its actions have replied and no reply is owed (output not yet written travels in
// the session), it is detached from this worker and sent in a batch (at most 253 per
// message); the old copy of the socket is closed once the successor acknowledged. A few
// batches per loop iteration, so neither loop stalls. When it cannot move (no channel
// left, an action still running at `pendingShutdownWaitLimit`, the successor refused
// it), the connection gets the goodbye instead, with a log line.

/// What a worker counted of handoffs (for its report and the log).
public struct HandoffCounts: Sendable, Equatable {
    /// Connections this worker handed to a successor, and those it gave the goodbye
    /// instead (TLS, or a handoff that could not happen).
    public var handedOver = 0
    public var drained = 0
    /// Connections this worker adopted from another.
    public var adopted = 0
    public init() {}
}

/// The old worker's side of a handoff under way.
@LoopActor
final class HandoffSender {
    unowned let worker: Worker
    private var channels: [HandoffChannel] = []
    /// Connections waiting to move (their input held), in no particular order.
    private var candidates: [Connection] = []
    /// Batches sent and not acknowledged yet: the old copies of their sockets, and what to
    /// send as a goodbye if the successor refuses one.
    private var inFlight: [UInt32: (channel: HandoffChannel, fds: [Int32], ids: [String])] = [:]
    private var nextBatch: UInt32 = 1
    private var nextChannel = 0
    private var pumpTimer: LoopTimer?
    private var frame: [UInt8] = []
    private var startedAt = Clock.monotonicNanos()
    private(set) var longestPumpNanos: UInt64 = 0
    private var finished = false
    /// Batches wait until the successors keep the rooms' messages and this worker's position
    /// in each room is past their subscription (Worker+ChatHandoff.swift).
    private var pumpAllowed = false
    private var awaitingSubscribed: [ObjectIdentifier] = []
    private var syncTimer: LoopTimer?
    static let chatSyncLimitMilliseconds = 3_000

    /// Batches (of up to 253) sent per loop iteration; then the loop serves other events.
    static let batchesPerIteration = 2
    static let maximumInFlight = 8

    init(worker: Worker, channels fds: [Int32]) {
        self.worker = worker
        for fd in fds {
            do {
                let channel = try HandoffChannel(fd: fd)
                channel.onFrame = { [unowned self] kind, body, channel in received(kind, body, on: channel) }
                channel.onClosed = { [unowned self, unowned channel] reason in closed(channel, reason: reason) }
                channel.onWritable = { [unowned self] in schedulePump() }
                channels.append(channel)
            } catch {
                log.error("handoff.channel.failed", ["error": error.description])
                close(fd)
            }
        }
    }

    var isIdle: Bool { inFlight.isEmpty && candidates.isEmpty }

    /// Takes `connection` into the handoff when it can move (plain TCP, open, not closing
    /// on its own); false: it gets the goodbye drain.
    func take(_ connection: Connection) -> Bool {
        guard connection.transport is SocketTransport else { return false }
        guard !channels.isEmpty, connection.state == .open, !connection.isQuitting, !connection.inputEnded else { return false }
        // Served as usual until its batch comes (its input is held only then).
        candidates.append(connection)
        schedulePump()
        return true
    }

    /// Every connection is taken: sets up chat continuity, then the batches start.
    func begin() {
        let rooms = Array(Set(candidates.flatMap { $0.rooms.names })).sorted()
        guard !worker.bus.isLocalOnly, !rooms.isEmpty else { return allowPump() }
        let chat = worker.chatHandoff ?? ChatHandoff(worker: worker)
        worker.chatHandoff = chat
        chat.tracking = true
        var frame: [UInt8] = []
        HandoffFrame.begin(HandoffFrame.rooms, into: &frame)
        HandoffFrame.put32(UInt32(rooms.count), &frame)
        for room in rooms {
            let name = Array(room.utf8)
            HandoffFrame.put32(UInt32(name.count), &frame)
            frame.append(contentsOf: name)
        }
        HandoffFrame.end(&frame)
        for channel in channels where channel.isOpen {
            if (try? channel.send(frame, descriptors: [])) == true { awaitingSubscribed.append(ObjectIdentifier(channel)) }
        }
        syncTimer = EventLoop.current.schedule(afterMilliseconds: Self.chatSyncLimitMilliseconds) { [weak self] in
            guard let self, !self.pumpAllowed else { return }
            log.warn("handoff.chat.unsynchronized", ["reason": "the successors did not confirm the rooms in time; chat may skip or repeat a message"])
            self.allowPump()
        }
        subscribedMaybe(rooms: rooms)
    }

    private func subscribedMaybe(rooms: [String]? = nil) {
        guard awaitingSubscribed.isEmpty, !pumpAllowed, let chat = worker.chatHandoff else { return }
        guard chat.awaitedMarkers.isEmpty && chat.onMarkersSeen == nil else { return }
        let names = rooms ?? Array(Set(candidates.flatMap { $0.rooms.names }))
        chat.onMarkersSeen = { [weak self] in self?.allowPump() }
        for room in names { chat.awaitedMarkers[room] = worker.bus.publishMarker(room: room) }
        if chat.awaitedMarkers.isEmpty { chat.onMarkersSeen = nil; allowPump() }
    }

    private func allowPump() {
        guard !pumpAllowed else { return }
        pumpAllowed = true
        syncTimer?.cancel()
        syncTimer = nil
        schedulePump()
        if candidates.isEmpty { finishIfDone() }
    }

    private func schedulePump(afterMilliseconds delay: Int = 0) {
        guard pumpAllowed, pumpTimer == nil, !candidates.isEmpty else { return }
        pumpTimer = EventLoop.current.schedule(afterMilliseconds: delay) { [weak self] in
            guard let self else { return }
            self.pumpTimer = nil
            self.pump()
        }
    }

    private static func isReady(_ connection: Connection) -> Bool {
        connection.pendingActions == 0 && connection.pendingReplies == 0 && connection.files.isEmpty
            && !connection.isOverflowing && connection.runningCalls == nil
    }

    /// Sends the next batches of connections that are ready to move.
    private func pump() {
        let started = Clock.monotonicNanos()
        defer {
            let took = Clock.monotonicNanos() &- started
            if took > longestPumpNanos { longestPumpNanos = took }
        }
        candidates.removeAll { $0.state != .open }
        var batches = 0
        var waiting = false
        while batches < Self.batchesPerIteration && !candidates.isEmpty && inFlight.count < Self.maximumInFlight {
            let open = channels.filter { $0.isOpen && !$0.hasPendingOutput }
            guard !open.isEmpty else { waiting = true; break }
            let channel = open[nextChannel % open.count]
            nextChannel &+= 1
            var batch: [Connection] = []
            var rest: [Connection] = []
            for connection in candidates {
                if batch.count < DescriptorPassing.maximumPerMessage && !connection.inputHolds.contains(.handoff) {
                    // Its turn: nothing more is read; it goes now if nothing is owed to it.
                    worker.holdInput(connection, .handoff)
                }
                if batch.count < DescriptorPassing.maximumPerMessage && connection.inputHolds.contains(.handoff) && Self.isReady(connection) {
                    batch.append(connection)
                } else {
                    rest.append(connection)
                }
            }
            guard !batch.isEmpty else { break }
            if !send(batch, on: channel) { waiting = true; break }
            candidates = rest
            batches += 1
        }
        if candidates.isEmpty {
            finishIfDone()
        } else if !waiting {
            // More ready now: next iteration; only waiting actions left: look again soon.
            schedulePump(afterMilliseconds: candidates.contains(where: { !$0.inputHolds.contains(.handoff) || Self.isReady($0) }) ? 0 : 1)
        }
    }

    private func send(_ batch: [Connection], on channel: HandoffChannel) -> Bool {
        let number = nextBatch
        HandoffFrame.begin(HandoffFrame.batch, into: &frame)
        HandoffFrame.put32(number, &frame)
        HandoffFrame.put32(UInt32(batch.count), &frame)
        var encoded: [UInt8] = []
        for connection in batch {
            encoded.removeAll(keepingCapacity: true)
            worker.session(of: connection).encoded(into: &encoded)
            HandoffFrame.put32(UInt32(encoded.count), &frame)
            frame.append(contentsOf: encoded)
        }
        HandoffFrame.end(&frame)
        let fds = batch.map(\.fd)
        do {
            guard try channel.send(frame, descriptors: fds) else { return false }
        } catch {
            // Nothing went: the connections are still this worker's.
            channel.close(reason: error.description)
            return false
        }
        nextBatch &+= 1
        inFlight[number] = (channel, fds, batch.map(\.id.string))
        for connection in batch { worker.detachForHandoff(connection) }
        return true
    }

    private func received(_ kind: UInt8, _ body: ArraySlice<UInt8>, on channel: HandoffChannel) {
        if kind == HandoffFrame.subscribed {
            awaitingSubscribed.removeAll { $0 == ObjectIdentifier(channel) }
            return subscribedMaybe()
        }
        guard kind == HandoffFrame.ack, let number = HandoffFrame.get32(body, 0),
              let failedCount = HandoffFrame.get32(body, 4), let batch = inFlight.removeValue(forKey: number) else {
            return channel.close(reason: "an unexpected handoff frame")
        }
        var failed = Set<Int>()
        for i in 0..<Int(failedCount) {
            if let index = HandoffFrame.get32(body, 8 + 4 * i) { failed.insert(Int(index)) }
        }
        for (index, fd) in batch.fds.enumerated() {
            if failed.contains(index) {
                log.warn("handoff.fallback", ["id": batch.ids[index], "reason": "the successor could not adopt it"])
                goodbye(fd)
            } else {
                close(fd)
            }
        }
        worker.handoffCounts.handedOver += batch.fds.count - failed.count
        schedulePump()
        finishIfDone()
    }

    /// The channel broke: batches it carried that were not acknowledged get the goodbye on
    /// the old copy of their sockets (whatever the successor got died with it).
    private func closed(_ channel: HandoffChannel, reason: String) {
        if reason != "handoff done" { log.warn("handoff.channel.closed", ["reason": reason]) }
        for (number, batch) in inFlight where batch.channel === channel {
            inFlight[number] = nil
            for (index, fd) in batch.fds.enumerated() {
                log.warn("handoff.fallback", ["id": batch.ids[index], "reason": "the channel closed before the successor acknowledged (\(reason))"])
                goodbye(fd)
            }
        }
        awaitingSubscribed.removeAll { $0 == ObjectIdentifier(channel) }
        if !channels.contains(where: \.isOpen) { giveUp(reason: "no successor left (\(reason))") } else { subscribedMaybe() }
        finishIfDone()
    }

    /// The goodbye on a socket no longer attached to a connection, then close.
    private func goodbye(_ fd: Int32) {
        var line: [UInt8] = []
        ReplyWriter.goodbye(reason: "server shutdown", to: &line)
        _ = line.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
        _ = shutdown(fd, Int32(SHUT_WR))
        close(fd)
        worker.handoffCounts.drained += 1
    }

    /// Connections not moved yet get the goodbye drain (`pendingShutdownWaitLimit` passed,
    /// or no successor is left).
    func giveUp(reason: String) {
        let left = candidates
        candidates.removeAll()
        pumpTimer?.cancel()
        pumpTimer = nil
        for connection in left where connection.isOpen {
            log.warn("handoff.fallback", ["id": connection.id.string, "reason": reason])
            worker.handoffCounts.drained += 1
            worker.releaseInput(connection, .handoff)
            worker.sayGoodbyeWhenIdle(connection, reason: "server shutdown")
        }
        finishIfDone()
    }

    private func finishIfDone() {
        guard isIdle, !finished, pumpAllowed || channels.allSatisfy({ !$0.isOpen }) else { return }
        finished = true
        let counts = worker.handoffCounts
        log.info("handoff.done", ["handedOver": String(counts.handedOver), "drained": String(counts.drained),
                                  "ms": String((Clock.monotonicNanos() &- startedAt) / 1_000_000),
                                  "longestStepMs": String(format3(longestPumpNanos))])
        for channel in channels { channel.close(reason: "handoff done") }
        worker.handoffFinished()
    }

    private func format3(_ nanos: UInt64) -> String {
        let micros = nanos / 1_000
        return "\(micros / 1_000).\(String(micros % 1_000 + 1_000).dropFirst())"
    }
}

/// The successor's side: adopts the connections arriving on a channel.
@LoopActor
final class HandoffReceiver {
    unowned let worker: Worker
    private let channel: HandoffChannel

    init(worker: Worker, channel fd: Int32) throws(SystemError) {
        self.worker = worker
        channel = try HandoffChannel(fd: fd)
        channel.onFrame = { [unowned self] kind, body, channel in received(kind, body, on: channel) }
        channel.onClosed = { [unowned self] reason in
            if reason != "the other worker closed the channel" { log.warn("handoff.channel.closed", ["reason": reason]) }
            worker.receivers.removeAll { $0 === self }
            if worker.receivers.isEmpty { worker.chatHandoff?.channelsClosed() }
        }
    }

    private func received(_ kind: UInt8, _ body: ArraySlice<UInt8>, on channel: HandoffChannel) {
        if kind == HandoffFrame.rooms { return expectRooms(body, on: channel) }
        guard kind == HandoffFrame.batch, let number = HandoffFrame.get32(body, 0), let count = HandoffFrame.get32(body, 4),
              let fds = channel.takeDescriptors(Int(count)) else {
            return channel.close(reason: "a malformed handoff batch")
        }
        var offset = 8
        var failed: [UInt32] = []
        var adopted: [Connection] = []
        for (index, fd) in fds.enumerated() {
            var session: Session?
            if let length = HandoffFrame.get32(body, offset), body.count >= offset + 4 + Int(length) {
                let start = body.startIndex + offset + 4
                session = try? Session(decoding: Array(body[start..<(start + Int(length))]))
                offset += 4 + Int(length)
            }
            if let session, let connection = worker.adopt(fd: fd, session: session) {
                adopted.append(connection)
            } else {
                // The old worker still holds its copy: it says goodbye on it.
                log.warn("handoff.adopt.failed", ["reason": session == nil ? "a session that cannot be read" : "cannot serve it"])
                close(fd)
                failed.append(UInt32(index))
            }
        }
        // The rooms' members move to this worker in Redis before the old worker may leave
        // the cluster (it clears what Redis holds of it as it stops): acknowledge after.
        Task.onLoop { [self] in
            await worker.moveMembership(of: adopted)
            var ack: [UInt8] = []
            HandoffFrame.begin(HandoffFrame.ack, into: &ack)
            HandoffFrame.put32(number, &ack)
            HandoffFrame.put32(UInt32(failed.count), &ack)
            for index in failed { HandoffFrame.put32(index, &ack) }
            HandoffFrame.end(&ack)
            do {
                _ = try channel.send(ack, descriptors: [])
            } catch {
                channel.close(reason: "\(error)")
            }
        }
    }

    /// The old worker's rooms: subscribe to them and keep their messages, then say so.
    private func expectRooms(_ body: ArraySlice<UInt8>, on channel: HandoffChannel) {
        var rooms: [String] = []
        var offset = 4
        for _ in 0..<Int(HandoffFrame.get32(body, 0) ?? 0) {
            guard let length = HandoffFrame.get32(body, offset), body.count >= offset + 4 + Int(length) else {
                return channel.close(reason: "a malformed rooms frame")
            }
            let start = body.startIndex + offset + 4
            rooms.append(String(decoding: body[start..<(start + Int(length))], as: UTF8.self))
            offset += 4 + Int(length)
        }
        let chat = worker.chatHandoff ?? ChatHandoff(worker: worker)
        worker.chatHandoff = chat
        chat.expect(rooms: rooms)
        Task.onLoop { [self] in
            for room in rooms {
                do {
                    try await worker.bus.subscribe(room: room)
                } catch {
                    log.warn("handoff.chat.subscribe.failed", ["room": room, "error": "\(error)"])
                }
            }
            var frame: [UInt8] = []
            HandoffFrame.begin(HandoffFrame.subscribed, into: &frame)
            HandoffFrame.end(&frame)
            do {
                _ = try channel.send(frame, descriptors: [])
            } catch {
                channel.close(reason: "\(error)")
            }
        }
    }
}

extension Worker {
    /// Hands every connection it can over the given channels (the other ends are with the
    /// successors), the goodbye drain for the rest; then stops as after `stop()`.
    public func handOver(channels: [Int32]) {
        guard !isStopping else {
            for fd in channels { close(fd) }
            return
        }
        let sender = HandoffSender(worker: self, channels: channels)
        handoff = sender
        log.info("handoff.start", ["connections": String(connectionCount), "channels": String(channels.count)])
        stop()
        sender.begin()
    }

    /// Adopts connections arriving on `channel` from a worker being replaced.
    public func adopt(channel fd: Int32) {
        do {
            receivers.append(try HandoffReceiver(worker: self, channel: fd))
        } catch {
            log.error("handoff.channel.failed", ["error": error.description])
            close(fd)
        }
    }

    /// The connection's session as it stands (for a handoff).
    func session(of connection: Connection) -> Session {
        var session = Session(idHigh: connection.id.high, idLow: connection.id.low, remoteIP: connection.remoteIP,
                remotePort: connection.remotePort, connectedAt: connection.connectedAt, params: connection.params,
                paramBytes: connection.paramBytes,
                rooms: connection.rooms.list.map { Session.Room(name: $0.name, joinedAt: $0.joinedAt) },
                messageCount: connection.messageCount, totalActions: connection.totalActions,
                unparsed: connection.framer.unparsed, discardingLine: connection.framer.isDiscarding,
                output: connection.output.copy(from: connection.outputSent))
        if let chat = chatHandoff, chat.tracking {
            session.chatOrigin = bus.originID
            session.chatSequence = bus.lastPublishedSequence
            for room in connection.rooms.names {
                if let position = chat.positions[room] {
                    session.cursors.append(Session.Cursor(room: room, origin: position.origin, sequence: position.sequence))
                }
            }
        }
        return session
    }

    /// Serves a connection another worker handed over: same id, session and socket; nil
    /// when it cannot (the caller closes the socket; the old worker says goodbye).
    func adopt(fd: Int32, session: Session) -> Connection? {
        guard !isStopping, connectionCount < configuration.maxConnections else { return nil }
        let connection = Connection(worker: self, transport: SocketTransport(fd: fd), id: session.id,
                                    remoteIP: session.remoteIP, remotePort: session.remotePort,
                                    maxLineBytes: configuration.maxLineBytes, connectedAt: session.connectedAt)
        connection.framer = LineFramer(maxLineBytes: configuration.maxLineBytes, resuming: session.unparsed,
                                       discarding: session.discardingLine)
        connection.messageCount = session.messageCount
        connection.totalActions = session.totalActions
        connection.params = session.params
        connection.paramBytes = session.paramBytes
        do {
            try EventLoop.current.register(fd: fd, events: IOEvents.readable | IOEvents.readHangUp, handler: connection)
        } catch {
            log.error("connection.failed", ["reason": error.description])
            return nil
        }
        attach(connection)
        handoffCounts.adopted += 1
        // Recorded here at once (no announcement: it did not join, it moved); the bus
        // moves the members in Redis (`moveMembership`).
        for room in session.rooms { membership.add(connection, to: room.name, joinedAt: room.joinedAt) }
        if !session.output.isEmpty { connection.send(body: session.output) }
        chatHandoff?.adopted(connection, session: session)
        if connection.framer.hasHeldInput {
            connection.isQueuedForResume = true
            resumeQueue.append(connection)
        }
        log.debug("connection.adopted", ["id": connection.id.string, "remote": "\(session.remoteIP):\(session.remotePort)"])
        if configuration.idleTimeout > 0 { scheduleSweep() }
        return connection
    }

    /// Moves the adopted connections' room memberships to this worker in Redis (one
    /// script per room: the member's entry is rewritten in place, so `roomView` never
    /// misses it), subscribing to the rooms' channels on the way.
    func moveMembership(of adopted: [Connection]) async {
        guard !bus.isLocalOnly else { return }
        var byRoom: [String: [RoomMember]] = [:]
        for connection in adopted {
            for room in connection.rooms.list {
                byRoom[room.name, default: []].append(RoomMember(id: connection.id.string, joinedAt: room.joinedAt))
            }
        }
        for (room, members) in byRoom {
            do {
                try await bus.adopt(room: room, members: members)
            } catch {
                log.warn("room.adopt.failed", ["room": room, "members": String(members.count), "error": "\(error)"])
            }
        }
    }

    /// Whether the handoff (if any) still has connections in flight.
    var handoffIsIdle: Bool { handoff?.isIdle ?? true }

    func handoffFinished() {
        if isStopping && connectionCount == 0 { finishStopping() }
    }
}
