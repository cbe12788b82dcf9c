/// Reply encoders. Each appends one complete line ending in "\r\n" to `out`, keys
/// in exactly the order PROTOCOL.md shows.
public enum ReplyWriter {
    public static let defaultWelcome = "Hello! Welcome to the actionhero api"

    /// `{"welcome":W,"room":R,"context":"api"}` ("room" left out when nil).
    public static func welcome(_ text: String, room: String?, to out: inout [UInt8]) {
        JSONWriter.appendASCII("{\"welcome\":", to: &out)
        JSONWriter.writeString(text, to: &out)
        if let room {
            JSONWriter.appendASCII(",\"room\":", to: &out)
            JSONWriter.writeString(room, to: &out)
        }
        JSONWriter.appendASCII(",\"context\":\"api\"}\r\n", to: &out)
    }

    /// `{"status":"Bye!","context":"api","reason":R}`.
    public static func goodbye(reason: String, to out: inout [UInt8]) {
        JSONWriter.appendASCII("{\"status\":\"Bye!\",\"context\":\"api\",\"reason\":", to: &out)
        JSONWriter.writeString(reason, to: &out)
        JSONWriter.appendASCII("}\r\n", to: &out)
    }

    /// `{"status":S,"context":"response","data":D,"messageCount":n}`; a nil `data`
    /// leaves the "data" key out.
    public static func verbReply(status: String, data: JSON?, messageCount: Int, to out: inout [UInt8]) {
        JSONWriter.appendASCII("{\"status\":", to: &out)
        JSONWriter.writeString(status, to: &out)
        JSONWriter.appendASCII(",\"context\":\"response\"", to: &out)
        if let data {
            JSONWriter.appendASCII(",\"data\":", to: &out)
            JSONWriter.write(data, to: &out)
        }
        JSONWriter.appendASCII(",\"messageCount\":", to: &out)
        JSONWriter.writeInt(messageCount, to: &out)
        JSONWriter.appendASCII("}\r\n", to: &out)
    }

    /// The fields in order (skipping any named "error", "context" or
    /// "messageCount"), then `"error":E` when `error` is not nil, then
    /// `"context":"response","messageCount":n`.
    public static func actionReply(fields: JSONObject, error: String?, messageCount: Int, to out: inout [UInt8]) {
        if smallActionReply(fields: fields, error: error, messageCount: messageCount, to: &out) { return }
        out.append(UInt8(ascii: "{"))
        for (key, value) in fields {
            if isReservedReplyKey(key) { continue }
            JSONWriter.writeString(key, to: &out)
            out.append(UInt8(ascii: ":"))
            JSONWriter.write(value, to: &out)
            out.append(UInt8(ascii: ","))
        }
        if let error {
            JSONWriter.appendASCII("\"error\":", to: &out)
            JSONWriter.writeString(error, to: &out)
            out.append(UInt8(ascii: ","))
        }
        JSONWriter.appendASCII("\"context\":\"response\",\"messageCount\":", to: &out)
        JSONWriter.writeInt(messageCount, to: &out)
        JSONWriter.appendASCII("}\r\n", to: &out)
    }

    /// The keys an action's fields may not set (the reply's own).
    @inline(__always)
    static func isReservedReplyKey(_ key: String) -> Bool {
        switch key.utf8.count {
        case 5: return key == "error"
        case 7: return key == "context"
        case 12: return key == "messageCount"
        default: return false
        }
    }

    /// The most bytes `smallActionReply` writes.
    @inlinable public static var smallReplyBytes: Int { 512 }

    /// `actionReply` for the common small reply (scalar fields, short strings), assembled
    /// on the stack and appended with one copy; false (nothing appended) when it does not
    /// fit in `smallReplyBytes` or holds an array, an object or a number in exponent form.
    static func smallActionReply(fields: JSONObject, error: String?, messageCount: Int, to out: inout [UInt8]) -> Bool {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 512) { buffer -> Bool in
            let n = smallActionReply(fields: fields, error: error, messageCount: messageCount, into: buffer)
            guard n > 0 else { return false }
            out.appendRaw(UnsafeRawBufferPointer(start: buffer.baseAddress, count: n))
            return true
        }
    }

    /// `actionReply` written straight into `buffer` (a connection's spare output
    /// capacity) when the reply is small (see above) and fits; the count written, 0 when
    /// it does not fit (then what is in `buffer` means nothing).
    public static func smallActionReply(fields: JSONObject, error: String?, messageCount: Int,
                                        into buffer: UnsafeMutableBufferPointer<UInt8>) -> Int {
        guard fields.count <= 8 else { return 0 }
        var w = ScratchWriter(buffer)
        w.byte(UInt8(ascii: "{"))
        let fitted = fields.entries.withUnsafeBufferPointer { entries -> Bool in
            for i in 0..<entries.count {
                if !w.key(entries[i].key) { continue }
                switch entries[i].value {
                case .number(let d): if !w.number(d) { return false }
                case .string(let text): w.string(text)
                case .bool(let flag): if flag { w.ascii("true") } else { w.ascii("false") }
                case .null: w.ascii("null")
                case .array, .object: return false
                }
                w.byte(UInt8(ascii: ","))
            }
            return true
        }
        guard fitted else { return 0 }
        if let error {
            w.ascii("\"error\":")
            w.string(error)
            w.byte(UInt8(ascii: ","))
        }
        w.ascii("\"context\":\"response\",\"messageCount\":")
        w.int(Int64(messageCount))
        w.ascii("}\r\n")
        return w.overflowed ? 0 : w.count
    }

    /// `{"message":M,"room":R,"from":F,"context":"user","sentAt":ms}`; `from` is a
    /// connection id string, or the number 0 for the server.
    public static func chat(message: String, room: String, from: JSON, sentAt: Int, to out: inout [UInt8]) {
        JSONWriter.appendASCII("{\"message\":", to: &out)
        JSONWriter.writeString(message, to: &out)
        JSONWriter.appendASCII(",\"room\":", to: &out)
        JSONWriter.writeString(room, to: &out)
        JSONWriter.appendASCII(",\"from\":", to: &out)
        JSONWriter.write(from, to: &out)
        JSONWriter.appendASCII(",\"context\":\"user\",\"sentAt\":", to: &out)
        JSONWriter.writeInt(sentAt, to: &out)
        JSONWriter.appendASCII("}\r\n", to: &out)
    }

    /// `{"status":"keep-alive","context":"api","serverTime":ms}`.
    public static func keepAlive(serverTime: Int, to out: inout [UInt8]) {
        JSONWriter.appendASCII("{\"status\":\"keep-alive\",\"context\":\"api\",\"serverTime\":", to: &out)
        JSONWriter.writeInt(serverTime, to: &out)
        JSONWriter.appendASCII("}\r\n", to: &out)
    }

    /// The over-long-line reply of PROTOCOL.md §1:
    /// `{"status":"error","error":"data length is too big (<limit> max)","context":"response","messageCount":n}`.
    public static func tooLong(maxLineBytes: Int, messageCount: Int, to out: inout [UInt8]) {
        JSONWriter.appendASCII("{\"status\":\"error\",\"error\":\"data length is too big (", to: &out)
        JSONWriter.writeInt(maxLineBytes, to: &out)
        JSONWriter.appendASCII(" max)\",\"context\":\"response\",\"messageCount\":", to: &out)
        JSONWriter.writeInt(messageCount, to: &out)
        JSONWriter.appendASCII("}\r\n", to: &out)
    }
}
