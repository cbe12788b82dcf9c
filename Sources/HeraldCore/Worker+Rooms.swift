import HeraldLoop
import HeraldProtocol

/// Why a room operation did not happen.
struct RoomOperationFailure: Error, CustomStringConvertible {
    let description: String
}

extension Worker {
    // MARK: Joining and leaving
    //
    // Membership changes only once the bus has done its part (the join is visible on every
    // worker, the leave is gone from them): a join or leave that fails changes nothing.
    // A connection's room operations run one at a time, in order: while one waits for the
    // bus, the connection's input is held (`.roomOperations`), so a pipelined `say` or
    // `roomLeave` sees the join before it, and one client cannot have more than one
    // room operation's Redis work in flight.

    /// `roomAdd`: replies once the join is visible everywhere, or that it failed.
    func join(_ connection: Connection, room: String, messageCount: Int) {
        guard !bus.isLocalOnly else {
            recordJoin(connection, room: room, joinedAt: Clock.wallMillis())
            return replyVerb(connection, "OK", .bool(true), messageCount)
        }
        beginRoomOperation(connection)
        Task.onLoop { [self] in
            if let failure = await joinThroughBus(connection, room: room) {
                replyVerb(connection, "the room could not be joined (\(failure))", .bool(false), messageCount)
            } else {
                replyVerb(connection, "OK", .bool(true), messageCount)
            }
            endRoomOperation(connection)
        }
    }

    /// `roomLeave`: replies once the leave is done everywhere; when it fails, the
    /// connection stays in the room.
    func leave(_ connection: Connection, room: String, messageCount: Int) {
        guard !bus.isLocalOnly else {
            recordLeave(connection, room: room)
            return replyVerb(connection, "OK", .bool(true), messageCount)
        }
        beginRoomOperation(connection)
        Task.onLoop { [self] in
            if let failure = await leaveThroughBus(connection, room: room) {
                replyVerb(connection, "the room could not be left (\(failure))", .bool(false), messageCount)
            } else {
                replyVerb(connection, "OK", .bool(true), messageCount)
            }
            endRoomOperation(connection)
        }
    }

    /// `roomChange`: leaves every other room, then joins `room` (unless already in it).
    /// Stops at the first step that fails (the rooms left before it stay left).
    func changeRoom(_ connection: Connection, room: String, messageCount: Int) {
        guard !bus.isLocalOnly else {
            for other in connection.rooms.names where other != room { recordLeave(connection, room: other) }
            if !connection.isMember(of: room) { recordJoin(connection, room: room, joinedAt: Clock.wallMillis()) }
            return replyVerb(connection, "OK", .bool(true), messageCount)
        }
        beginRoomOperation(connection)
        Task.onLoop { [self] in
            defer { endRoomOperation(connection) }
            for other in connection.rooms.names where other != room {
                guard connection.isOpen else { return }
                if let failure = await leaveThroughBus(connection, room: other) {
                    return replyVerb(connection, "the room \(other) could not be left (\(failure))", .bool(false), messageCount)
                }
            }
            if !connection.isMember(of: room), let failure = await joinThroughBus(connection, room: room) {
                return replyVerb(connection, "the room could not be joined (\(failure))", .bool(false), messageCount)
            }
            replyVerb(connection, "OK", .bool(true), messageCount)
        }
    }

    /// A room operation with a reply waits for the bus: the connection's input is held
    /// meanwhile, and the reply is owed (a half-closed connection waits for it).
    private func beginRoomOperation(_ connection: Connection) {
        holdInput(connection, .roomOperations)
        connection.pendingReplies += 1
    }

    private func endRoomOperation(_ connection: Connection) {
        releaseInput(connection, .roomOperations)
        replyFinished(connection)
    }

    /// The default room, joined on connect: recorded at once (the welcome line named it),
    /// then registered on the bus; when Redis cannot take it now, the worker registers it
    /// with the rest of its members once Redis is back.
    func joinDefaultRoom(_ connection: Connection, room: String) {
        let joinedAt = Clock.wallMillis()
        recordJoin(connection, room: room, joinedAt: joinedAt)
        guard !bus.isLocalOnly else { return }
        membershipBatch.join(connection, room: room)
    }

    /// Leaves every room at once (the connection is closing), then tells the bus (in this
    /// iteration's `MembershipBatch`).
    func leaveAllRooms(_ connection: Connection) {
        guard !connection.rooms.isEmpty else { return }
        let id = connection.id.string
        for room in connection.rooms.names.reversed() {
            recordLeave(connection, room: room)
            if !bus.isLocalOnly { membershipBatch.leave(id, room: room) }
        }
    }

    /// Makes the join visible through the bus, then records it; nil when it is recorded.
    /// When it failed, or the connection closed meanwhile, whatever reached Redis is taken back.
    private func joinThroughBus(_ connection: Connection, room: String) async -> (any Error)? {
        let joinedAt = Clock.wallMillis()
        let member = RoomMember(id: connection.id.string, joinedAt: joinedAt)
        membership.beginJoin(room)
        var failure: (any Error)?
        do {
            try await bus.join(room: room, member: member)
        } catch {
            failure = error
        }
        membership.endJoin(room)
        if failure == nil {
            if connection.isOpen && !connection.isMember(of: room) {
                recordJoin(connection, room: room, joinedAt: joinedAt)
                return nil
            }
            failure = RoomOperationFailure(description: "the connection closed")
        } else {
            log.warn("room.join.failed", ["room": room, "connection": member.id, "error": "\(failure!)"])
        }
        // Nothing recorded: take back the member (ordered after the join on the bus).
        let lastHere = membership.interest(in: room) == 0
        if lastHere { bus.roomVacated(room) }
        Task.onLoop { [self] in try? await bus.leave(room: room, memberID: member.id, lastHere: lastHere) }
        return failure
    }

    /// Removes the member through the bus, then records the leave; nil when it is done.
    private func leaveThroughBus(_ connection: Connection, room: String) async -> (any Error)? {
        let lastHere = membership.interest(in: room) <= 1
        let id = connection.id.string
        do {
            try await bus.leave(room: room, memberID: id, lastHere: lastHere)
        } catch {
            log.warn("room.leave.failed", ["room": room, "connection": id, "error": "\(error)"])
            return error
        }
        if connection.isMember(of: room) { recordLeave(connection, room: room) }
        return nil
    }

    private func recordJoin(_ connection: Connection, room: String, joinedAt: Int) {
        membership.add(connection, to: room, joinedAt: joinedAt)
        if configuration.announceJoinLeave { broadcast(room: room, message: "I have entered the room", from: connection) }
    }

    private func recordLeave(_ connection: Connection, room: String) {
        membership.remove(connection, from: room)
        if configuration.announceJoinLeave { broadcast(room: room, message: "I have left the room", from: connection) }
        if membership.interest(in: room) == 0 { bus.roomVacated(room) }
    }

    func viewRoom(_ room: String, for connection: Connection, messageCount: Int) {
        guard !bus.isLocalOnly else {
            return replyVerb(connection, "OK", Self.roomView(room, membership.memberList(of: room)), messageCount)
        }
        connection.pendingReplies += 1
        Task.onLoop { [self] in
            defer { replyFinished(connection) }
            do {
                let members = try await bus.members(of: room)
                replyVerb(connection, "OK", Self.roomView(room, members), messageCount)
            } catch {
                replyVerb(connection, "the room could not be read (\(error))", nil, messageCount)
            }
        }
    }

    /// `{"room":R,"members":{"<id>":{"id","joinedAt"},…},"membersCount":k}`
    static func roomView(_ room: String, _ members: [RoomMember]) -> JSON {
        var listed = JSONObject()
        for member in members.sorted(by: { ($0.joinedAt, $0.id) < ($1.joinedAt, $1.id) }) {
            listed[member.id] = .object(JSONObject([("id", .string(member.id)), ("joinedAt", .number(Double(member.joinedAt)))]))
        }
        return .object(JSONObject([("room", .string(room)), ("members", .object(listed)), ("membersCount", .number(Double(listed.count)))]))
    }

    /// `say [room] message`
    func say(_ arguments: String, from connection: Connection, messageCount: Int) {
        guard let current = connection.currentRoom else {
            return replyVerb(connection, "connection not in a room", .null, messageCount)
        }
        let split = VerbArguments.say(arguments) { connection.isMember(of: $0) }
        let room = split.room ?? current
        let message = split.message
        // The limit is on the chat line as sent to each member (JSON escaping makes a
        // control byte six); the message alone already longer is refused before encoding.
        let limit = configuration.maxSayBytes
        // Redis unreachable: nobody hears it rather than only this worker's members.
        guard bus.isLocalOnly || bus.acceptsPublish(room: room) else {
            return replyVerb(connection, Self.busUnavailable, .null, messageCount)
        }
        guard message.utf8.count <= limit, broadcast(room: room, message: message, from: connection, maxLineBytes: limit) else {
            return replyVerb(connection, "message too long: a chat line is at most \(limit) bytes (maxSayBytes), JSON-encoded", .null, messageCount)
        }
        replyVerb(connection, "OK", .null, messageCount)
        ProcessMetrics.counters.says += 1
        // Says faster than Redis takes them: read nothing more from this client until it drains.
        if bus.isCongested, !connection.inputHolds.contains(.busBacklog) {
            holdInput(connection, .busBacklog)
            heldForBus.append(connection)
        }
    }

    static let busUnavailable = "room bus unavailable: message not sent"

    /// The bus took what was published: connections held for it read again.
    func busDrained() {
        let held = heldForBus
        heldForBus.removeAll()
        for connection in held where connection.state != .closed { releaseInput(connection, .busBacklog) }
    }

    /// Sends a chat line to every member of `room` on every worker but the sender; false
    /// (and nothing sent) when the line would be longer than `maxLineBytes`.
    @discardableResult
    func broadcast(room: String, message: String, from sender: Connection?, maxLineBytes: Int = .max) -> Bool {
        var line: [UInt8] = []
        let senderID = sender?.id.string
        ReplyWriter.chat(message: message, room: room, from: senderID.map(JSON.string) ?? .number(0),
                         sentAt: Clock.wallMillis(), to: &line)
        guard line.count <= maxLineBytes else { return false }
        if let chat = chatHandoff, chat.deliversFromEcho(room) {
            // Members are arriving from a handoff: everyone here hears it at its place in
            // the room's stream, from the echo (Worker+ChatHandoff.swift).
            bus.publish(room: room, senderID: senderID ?? "0", line: line)
            chat.noteOwnSay(sequence: bus.lastPublishedSequence, sender: sender)
            return true
        }
        deliver(room: room, line: line, except: sender)
        if !bus.isLocalOnly { bus.publish(room: room, senderID: senderID ?? "0", line: line) }
        return true
    }

    /// Sends a chat line to this worker's members of `room`, except `sender`.
    func deliver(room: String, line: [UInt8], except sender: Connection?) {
        line.withBytes { deliver(room: room, bytes: $0, except: sender) }
    }

    /// Sends `bytes` (`lines` whole chat lines) to every open member of `room` but `sender`.
    func deliver(room: String, bytes: UnsafeRawBufferPointer, except sender: Connection?, lines: Int = 1) {
        guard let members = membership.members(of: room) else { return }
        var delivered = 0
        members.forEach { member in
            if member !== sender && member.isOpen {
                member.send(raw: bytes)
                delivered += 1
            }
        }
        ProcessMetrics.counters.chatDeliveries += delivered * lines
    }

    func replyVerb(_ connection: Connection, _ status: String, _ data: JSON?, _ messageCount: Int) {
        guard connection.isOpen else { return }
        connection.send({ ReplyWriter.verbReply(status: status, data: data, messageCount: messageCount, to: &$0) },
                        tooBig: { Self.replyTooBig($1, messageCount: messageCount, maxOutputBytes: configuration.maxOutputBytes, to: &$0) })
    }
}
