import HeraldProtocol

/// Everything of a connection that must survive when it moves to another worker process
/// (the connection handoff of a reload or scale-down): its identity, address and times,
/// sticky params, rooms, counters, the input received but not parsed yet and the output
/// not written yet. One value with a binary, versioned encoding; the socket itself
/// travels beside it (SCM_RIGHTS).
public struct Session: Equatable, Sendable {
    public static let encodingVersion: UInt8 = 1

    public var idHigh: UInt64
    public var idLow: UInt64
    public var remoteIP: String
    public var remotePort: Int
    public var connectedAt: Int
    public var params: JSONObject
    public var paramBytes: Int
    /// In the order joined (the first is the current room), with the join times.
    public var rooms: [Room]
    public var messageCount: Int
    public var totalActions: Int
    /// Input received but not parsed yet (an unfinished line, or lines held back).
    public var unparsed: [UInt8]
    /// True while the rest of an over-long line is being discarded.
    public var discardingLine: Bool
    /// Output not written to the socket yet.
    public var output: [UInt8]
    /// Chat across the move (Worker+ChatHandoff.swift): the old worker's bus id and the
    /// last sequence number it published (its own messages up to it were delivered), and
    /// per room the last bus message it processed.
    public var chatOrigin: [UInt8] = []
    public var chatSequence: UInt64 = 0
    public var cursors: [Cursor] = []

    public struct Cursor: Equatable, Sendable {
        public var room: String
        public var origin: [UInt8]
        public var sequence: UInt64
        public init(room: String, origin: [UInt8], sequence: UInt64) {
            self.room = room
            self.origin = origin
            self.sequence = sequence
        }
    }

    public struct Room: Equatable, Sendable {
        public var name: String
        public var joinedAt: Int
        public init(name: String, joinedAt: Int) {
            self.name = name
            self.joinedAt = joinedAt
        }
    }

    public init(idHigh: UInt64, idLow: UInt64, remoteIP: String, remotePort: Int, connectedAt: Int,
                params: JSONObject = JSONObject(), paramBytes: Int = 0, rooms: [Room] = [], messageCount: Int = 0,
                totalActions: Int = 0, unparsed: [UInt8] = [], discardingLine: Bool = false, output: [UInt8] = []) {
        self.idHigh = idHigh
        self.idLow = idLow
        self.remoteIP = remoteIP
        self.remotePort = remotePort
        self.connectedAt = connectedAt
        self.params = params
        self.paramBytes = paramBytes
        self.rooms = rooms
        self.messageCount = messageCount
        self.totalActions = totalActions
        self.unparsed = unparsed
        self.discardingLine = discardingLine
        self.output = output
    }

    public var id: ConnectionID { ConnectionID(high: idHigh, low: idLow) }

    // MARK: Encoding

    /// version, id, ip, port, connectedAt, params (JSON text), paramBytes, rooms, counters,
    /// flags, unparsed, output. Integers are little-endian varints (zig-zag for signed).
    public func encoded(into out: inout [UInt8]) {
        out.append(Session.encodingVersion)
        Self.putFixed(idHigh, &out)
        Self.putFixed(idLow, &out)
        Self.putBytes(Array(remoteIP.utf8), &out)
        Self.putSigned(remotePort, &out)
        Self.putSigned(connectedAt, &out)
        var json: [UInt8] = []
        JSONWriter.writeObject(params, to: &json)
        Self.putBytes(json, &out)
        Self.putSigned(paramBytes, &out)
        Self.putUnsigned(UInt64(rooms.count), &out)
        for room in rooms {
            Self.putBytes(Array(room.name.utf8), &out)
            Self.putSigned(room.joinedAt, &out)
        }
        Self.putSigned(messageCount, &out)
        Self.putSigned(totalActions, &out)
        out.append(discardingLine ? 1 : 0)
        Self.putBytes(unparsed, &out)
        Self.putBytes(output, &out)
        Self.putBytes(chatOrigin, &out)
        Self.putUnsigned(chatSequence, &out)
        Self.putUnsigned(UInt64(cursors.count), &out)
        for cursor in cursors {
            Self.putBytes(Array(cursor.room.utf8), &out)
            Self.putBytes(cursor.origin, &out)
            Self.putUnsigned(cursor.sequence, &out)
        }
    }

    public var encoded: [UInt8] {
        var out: [UInt8] = []
        encoded(into: &out)
        return out
    }

    public struct DecodingError: Error, CustomStringConvertible, Equatable {
        public let description: String
    }

    public init(decoding bytes: [UInt8]) throws(DecodingError) {
        var reader = Reader(data: bytes)
        let version = try reader.byte()
        guard version == Session.encodingVersion else {
            throw DecodingError(description: "session encoding version \(version) (this worker reads \(Session.encodingVersion))")
        }
        idHigh = try reader.fixed()
        idLow = try reader.fixed()
        remoteIP = try reader.string()
        remotePort = try reader.signed()
        connectedAt = try reader.signed()
        let json = try reader.bytes()
        guard case .object(let object)? = try? JSONParser.parse(json) else {
            throw DecodingError(description: "session params are not a JSON object")
        }
        params = object
        paramBytes = try reader.signed()
        let roomCount = try reader.unsigned()
        guard roomCount <= UInt64(bytes.count) else { throw DecodingError(description: "session room count \(roomCount)") }
        var rooms: [Room] = []
        for _ in 0..<roomCount {
            let name = try reader.string()
            rooms.append(Room(name: name, joinedAt: try reader.signed()))
        }
        self.rooms = rooms
        messageCount = try reader.signed()
        totalActions = try reader.signed()
        discardingLine = try reader.byte() != 0
        unparsed = try reader.bytes()
        output = try reader.bytes()
        chatOrigin = try reader.bytes()
        chatSequence = try reader.unsigned()
        let cursorCount = try reader.unsigned()
        guard cursorCount <= UInt64(bytes.count) else { throw DecodingError(description: "session cursor count \(cursorCount)") }
        for _ in 0..<cursorCount {
            let room = try reader.string()
            let origin = try reader.bytes()
            cursors.append(Cursor(room: room, origin: origin, sequence: try reader.unsigned()))
        }
        guard reader.offset == bytes.count else { throw DecodingError(description: "session has trailing bytes") }
    }

    static func putFixed(_ value: UInt64, _ out: inout [UInt8]) {
        for shift in stride(from: 0, to: 64, by: 8) { out.append(UInt8(truncatingIfNeeded: value >> UInt64(shift))) }
    }

    static func putUnsigned(_ value: UInt64, _ out: inout [UInt8]) {
        var value = value
        while value >= 0x80 {
            out.append(UInt8(truncatingIfNeeded: value) | 0x80)
            value >>= 7
        }
        out.append(UInt8(value))
    }

    static func putSigned(_ value: Int, _ out: inout [UInt8]) {
        let zigzag = UInt64(bitPattern: Int64((value << 1) ^ (value >> 63)))
        putUnsigned(zigzag, &out)
    }

    static func putBytes(_ bytes: [UInt8], _ out: inout [UInt8]) {
        putUnsigned(UInt64(bytes.count), &out)
        out.append(contentsOf: bytes)
    }

    struct Reader {
        let data: [UInt8]
        var offset = 0

        mutating func byte() throws(DecodingError) -> UInt8 {
            guard offset < data.count else { throw DecodingError(description: "session truncated") }
            offset += 1
            return data[offset - 1]
        }

        mutating func fixed() throws(DecodingError) -> UInt64 {
            var value: UInt64 = 0
            for shift in stride(from: 0, to: 64, by: 8) { value |= UInt64(try byte()) << UInt64(shift) }
            return value
        }

        mutating func unsigned() throws(DecodingError) -> UInt64 {
            var value: UInt64 = 0
            var shift: UInt64 = 0
            while true {
                let b = try byte()
                guard shift < 64 else { throw DecodingError(description: "session varint too long") }
                value |= UInt64(b & 0x7F) << shift
                if b & 0x80 == 0 { return value }
                shift += 7
            }
        }

        mutating func signed() throws(DecodingError) -> Int {
            let zigzag = try unsigned()
            return Int(Int64(bitPattern: (zigzag >> 1) ^ (0 &- (zigzag & 1))))
        }

        mutating func bytes() throws(DecodingError) -> [UInt8] {
            let count = try unsigned()
            guard count <= UInt64(data.count - offset) else { throw DecodingError(description: "session truncated") }
            let start = offset
            offset += Int(count)
            return Array(data[start..<offset])
        }

        mutating func string() throws(DecodingError) -> String {
            String(decoding: try bytes(), as: UTF8.self)
        }
    }
}

extension ConnectionID {
    init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }
}
