import HeraldLoop
import HeraldProtocol

extension Worker {
    /// Adds the connection to `room` here and on the bus; replies (when `messageCount`
    /// is given) once the join is visible everywhere.
    func join(_ connection: Connection, room: String, messageCount: Int?) {
        let joinedAt = Clock.wallMillis()
        connection.rooms.append((room, joinedAt))
        if let members = localRooms[room] {
            members.insert(connection)
        } else {
            let members = RoomMembers()
            members.insert(connection)
            localRooms[room] = members
        }
        if configuration.announceJoinLeave { broadcast(room: room, message: "I have entered the room", from: connection) }
        guard !bus.isLocalOnly else {
            if let messageCount { replyVerb(connection, "OK", .bool(true), messageCount) }
            return
        }
        let member = RoomMember(id: connection.id.string, joinedAt: joinedAt)
        if messageCount != nil { connection.pendingReplies += 1 }
        Task.onLoop { [self] in
            defer { if messageCount != nil { replyFinished(connection) } }
            do {
                try await bus.join(room: room, member: member)
                if let messageCount { replyVerb(connection, "OK", .bool(true), messageCount) }
            } catch {
                log.warn("room.join.failed", ["room": room, "connection": member.id, "error": "\(error)"])
                if let messageCount { replyVerb(connection, "the room could not be joined (\(error))", .bool(false), messageCount) }
            }
        }
    }

    func leave(_ connection: Connection, room: String, messageCount: Int?) {
        connection.rooms.removeAll { $0.name == room }
        removeLocalMember(connection, room: room)
        if configuration.announceJoinLeave { broadcast(room: room, message: "I have left the room", from: connection) }
        guard !bus.isLocalOnly else {
            if let messageCount { replyVerb(connection, "OK", .bool(true), messageCount) }
            return
        }
        let id = connection.id.string
        if messageCount != nil { connection.pendingReplies += 1 }
        Task.onLoop { [self] in
            defer { if messageCount != nil { replyFinished(connection) } }
            do {
                try await bus.leave(room: room, memberID: id)
            } catch {
                log.warn("room.leave.failed", ["room": room, "connection": id, "error": "\(error)"])
            }
            if let messageCount { replyVerb(connection, "OK", .bool(true), messageCount) }
        }
    }

    func leaveAllRooms(_ connection: Connection) {
        for room in connection.rooms.map(\.name).reversed() { leave(connection, room: room, messageCount: nil) }
    }

    private func removeLocalMember(_ connection: Connection, room: String) {
        guard let members = localRooms[room] else { return }
        members.remove(connection)
        if members.isEmpty { localRooms[room] = nil }
    }

    func viewRoom(_ room: String, for connection: Connection, messageCount: Int) {
        guard !bus.isLocalOnly else {
            let members = (localRooms[room]?.connections ?? []).compactMap { member in
                member.rooms.first { $0.name == room }.map { RoomMember(id: member.id.string, joinedAt: $0.joinedAt) }
            }
            return replyVerb(connection, "OK", Self.roomView(room, members), messageCount)
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
        var room = current
        var message = arguments
        // Split on the first space by bytes (a Character search would run grapheme
        // breaking over the whole message).
        let utf8 = arguments.utf8
        if let space = utf8.firstIndex(of: UInt8(ascii: " ")) {
            let rest = utf8[utf8.index(after: space)...]
            if !rest.isEmpty {
                let word = String(Substring(utf8[..<space]))
                if connection.isMember(of: word) {
                    room = word
                    message = String(Substring(rest))
                }
            }
        }
        broadcast(room: room, message: message, from: connection)
        replyVerb(connection, "OK", .null, messageCount)
    }

    /// Sends a chat line to every member of `room` on every worker but the sender.
    func broadcast(room: String, message: String, from sender: Connection?) {
        var line: [UInt8] = []
        let senderID = sender?.id.string
        ReplyWriter.chat(message: message, room: room, from: senderID.map(JSON.string) ?? .number(0),
                         sentAt: Clock.wallMillis(), to: &line)
        deliver(room: room, line: line, except: sender)
        if !bus.isLocalOnly { bus.publish(room: room, senderID: senderID ?? "0", line: line) }
    }

    /// Sends a chat line to this worker's members of `room`, except `sender`.
    func deliver(room: String, line: [UInt8], except sender: Connection?) {
        line.withBytes { deliver(room: room, bytes: $0, except: sender) }
    }

    func deliver(room: String, bytes: UnsafeRawBufferPointer, except sender: Connection?) {
        guard let members = localRooms[room] else { return }
        members.forEach { member in
            if member !== sender && member.isOpen { member.send(raw: bytes) }
        }
    }

    func replyVerb(_ connection: Connection, _ status: String, _ data: JSON?, _ messageCount: Int) {
        guard connection.isOpen else { return }
        connection.send({ ReplyWriter.verbReply(status: status, data: data, messageCount: messageCount, to: &$0) },
                        tooBig: { Self.replyTooBig($1, messageCount: messageCount, maxOutputBytes: configuration.maxOutputBytes, to: &$0) })
    }
}
