import CHiredis

/// A Redis reply (RESP2), copied out of hiredis's reply object.
public enum RedisReply: Sendable, Equatable {
    case string([UInt8])
    case status(String)
    case error(String)
    case integer(Int)
    case null
    case array([RedisReply])

    /// Copies a hiredis reply (the object stays owned by hiredis).
    init(copying reply: UnsafePointer<redisReply>) {
        let r = reply.pointee
        switch r.type {
        case REDIS_REPLY_STRING: self = .string(Self.bytes(r.str, r.len))
        case REDIS_REPLY_STATUS: self = .status(String(decoding: Self.bytes(r.str, r.len), as: UTF8.self))
        case REDIS_REPLY_ERROR: self = .error(String(decoding: Self.bytes(r.str, r.len), as: UTF8.self))
        case REDIS_REPLY_INTEGER: self = .integer(Int(r.integer))
        case REDIS_REPLY_ARRAY:
            var items: [RedisReply] = []
            items.reserveCapacity(r.elements)
            for i in 0..<r.elements {
                if let element = r.element[i] { items.append(RedisReply(copying: element)) } else { items.append(.null) }
            }
            self = .array(items)
        default: self = .null
        }
    }

    static func bytes(_ pointer: UnsafeMutablePointer<CChar>?, _ count: Int) -> [UInt8] {
        guard let pointer, count > 0 else { return [] }
        return Array(UnsafeRawBufferPointer(start: pointer, count: count))
    }

    /// Decodes the replies in `resp` (whole replies only) with hiredis's own reader.
    public static func decode(resp: [UInt8]) throws(RedisError) -> [RedisReply] {
        guard let reader = redisReaderCreate() else { throw .protocolError("cannot create a reader") }
        defer { redisReaderFree(reader) }
        let fed = resp.withUnsafeBufferPointer { buffer in
            buffer.withMemoryRebound(to: CChar.self) { redisReaderFeed(reader, $0.baseAddress, $0.count) }
        }
        guard fed == REDIS_OK else { throw .protocolError("cannot feed the reader") }
        var replies: [RedisReply] = []
        while true {
            var object: UnsafeMutableRawPointer?
            guard redisReaderGetReply(reader, &object) == REDIS_OK else {
                let message = withUnsafeBytes(of: reader.pointee.errstr) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
                throw .protocolError(message)
            }
            guard let object else { break }
            let reply = object.assumingMemoryBound(to: redisReply.self)
            replies.append(RedisReply(copying: reply))
            freeReplyObject(object)
        }
        return replies
    }

    /// The reply as text (bulk strings and statuses), else nil.
    public var text: String? {
        switch self {
        case .string(let bytes): String(decoding: bytes, as: UTF8.self)
        case .status(let text): text
        default: nil
        }
    }

    public var integer: Int? {
        switch self {
        case .integer(let value): value
        case .string(let bytes): Int(String(decoding: bytes, as: UTF8.self))
        default: nil
        }
    }

    public var array: [RedisReply]? {
        if case .array(let items) = self { return items }
        return nil
    }
}

/// What a Redis call can fail with; each says what happened in words for the client.
public enum RedisError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Not connected (Redis down, reconnecting): said at once, never after a wait.
    case unavailable(String)
    /// No reply within the command timeout.
    case timeout(Int)
    /// The connection was lost with the command in flight.
    case disconnected(String)
    /// Redis answered with an error reply.
    case server(String)
    case protocolError(String)

    public var description: String {
        switch self {
        case .unavailable(let why): "redis is unavailable (\(why))"
        case .timeout(let ms): "redis did not answer within \(ms) ms"
        case .disconnected(let why): "the redis connection was lost (\(why))"
        case .server(let message): "redis error: \(message)"
        case .protocolError(let why): "redis protocol error: \(why)"
        }
    }
}
