import HeraldLoop
import HeraldProtocol

extension Worker {
    func handleVerb(_ verb: Verb, arguments: String, from connection: Connection, messageCount: Int) {
        func reply(_ status: String, _ data: JSON?) {
            connection.send({ ReplyWriter.verbReply(status: status, data: data, messageCount: messageCount, to: &$0) },
                            tooBig: { Self.replyTooBig($1, messageCount: messageCount, maxOutputBytes: configuration.maxOutputBytes, to: &$0) })
        }
        func ok(_ data: JSON?) { reply("OK", data) }
        /// Replies that carry every sticky param: when their encoded size (tracked) alone
        /// passes the output limit, the reply-too-big error goes out without encoding
        /// megabytes first (a few bytes of request must not buy that much CPU).
        func paramsTooBig() -> Bool {
            guard connection.paramBytes > configuration.maxOutputBytes else { return false }
            log.warn("output.lineTooBig", ["id": connection.id.string, "bytes": String(connection.paramBytes),
                                           "maxOutputBytes": String(configuration.maxOutputBytes)])
            connection.send { Self.replyTooBig(connection.paramBytes, messageCount: messageCount,
                                               maxOutputBytes: configuration.maxOutputBytes, to: &$0) }
            return true
        }
        // Not for say, the hot verb: its message may be long (say splits its own, VerbArguments.say).
        let firstWord = verb == .say ? "" : VerbArguments.firstWord(arguments)

        switch verb {
        case .quit, .exit, .close:
            connection.isQuitting = true
            sayGoodbyeWhenIdle(connection, reason: "\(verb.rawValue) requested")

        case .paramAdd:
            guard let (key, value) = Self.parseParamAdd(arguments) else { return reply("a parameter is required", .null) }
            if connection.params[key] == nil && connection.params.count >= configuration.maxStickyParams {
                return reply("too many params (\(configuration.maxStickyParams) max)", .null)
            }
            // Counted as JSON-encoded, as paramsView and detailsView will send them.
            let valueSize = Connection.encodedSize(value)
            if valueSize > configuration.maxStickyParamValueBytes {
                return reply("param value is too big (\(configuration.maxStickyParamValueBytes) bytes max, JSON-encoded)", .null)
            }
            let oldSize = connection.params[key].map { Connection.size(key, $0) } ?? 0
            if connection.paramBytes - oldSize + Connection.encodedSize(key) + valueSize + 2 > configuration.maxStickyParamBytes {
                return reply("params are too big (\(configuration.maxStickyParamBytes) bytes max, JSON-encoded)", .null)
            }
            connection.setSticky(key, .string(value))
            ok(.null)

        case .paramView:
            ok(connection.params[firstWord])

        case .paramDelete:
            connection.removeSticky(firstWord)
            ok(.null)

        case .paramsView:
            if paramsTooBig() { return }
            ok(.object(connection.params))

        case .paramsDelete:
            connection.params = JSONObject()
            connection.paramBytes = 0
            ok(.null)

        case .roomAdd, .listenToRoom:
            guard !firstWord.isEmpty else { return reply("a room is required", .bool(false)) }
            guard !connection.isMember(of: firstWord) else { return reply("connection already in this room", .bool(false)) }
            if let refusal = roomLimitRefusal(firstWord, for: connection) { return reply(refusal, .bool(false)) }
            join(connection, room: firstWord, messageCount: messageCount)

        case .roomLeave, .silenceRoom:
            guard !firstWord.isEmpty else { return reply("a room is required", .bool(false)) }
            guard connection.isMember(of: firstWord) else { return reply("connection not in this room", .bool(false)) }
            leave(connection, room: firstWord, messageCount: messageCount)

        case .roomChange:
            guard !firstWord.isEmpty else { return reply("a room is required", .bool(false)) }
            if !connection.isMember(of: firstWord), firstWord.utf8.count > configuration.maxRoomNameBytes {
                return reply("room names are at most \(configuration.maxRoomNameBytes) bytes", .bool(false))
            }
            changeRoom(connection, room: firstWord, messageCount: messageCount)

        case .roomView:
            let room = firstWord.isEmpty ? connection.currentRoom : firstWord
            guard let room else { return reply("connection not in a room", nil) }
            guard connection.isMember(of: room) else { return reply("not member of room \(room)", nil) }
            viewRoom(room, for: connection, messageCount: messageCount)

        case .detailsView:
            if paramsTooBig() { return }
            ok(.object(details(of: connection)))

        case .say:
            say(arguments, from: connection, messageCount: messageCount)

        case .documentation:
            ok(documentation)

        case .file:
            sendFile(arguments.isEmpty ? connection.params["file"]?.stringValue ?? "" : arguments,
                     to: connection, messageCount: messageCount)
        }
    }

    /// Why joining `room` is refused by the room limits, or nil.
    func roomLimitRefusal(_ room: String, for connection: Connection) -> String? {
        if room.utf8.count > configuration.maxRoomNameBytes {
            return "room names are at most \(configuration.maxRoomNameBytes) bytes"
        }
        if connection.rooms.count >= configuration.maxRoomsPerConnection {
            return "too many rooms (\(configuration.maxRoomsPerConnection) max)"
        }
        return nil
    }

    /// `key=value with spaces` → (key, "value with spaces"); `key value more` → (key, "value").
    nonisolated static func parseParamAdd(_ arguments: String) -> (String, String)? {
        VerbArguments.paramAdd(arguments).map { ($0.key, $0.value) }
    }

    func details(of connection: Connection) -> JSONObject {
        var data = JSONObject([
            ("id", .string(connection.id.string)),
            ("remoteIP", .string(connection.remoteIP)),
            ("remotePort", .number(Double(connection.remotePort))),
            ("params", .object(connection.params)),
            ("connectedAt", .number(Double(connection.connectedAt))),
        ])
        if let room = connection.currentRoom { data.append("room", .string(room)) }
        data.append("rooms", .array(connection.rooms.names.map { .string($0) }))
        data.append("totalActions", .number(Double(connection.totalActions)))
        data.append("pendingActions", .number(Double(connection.pendingActions)))
        return data
    }
}
