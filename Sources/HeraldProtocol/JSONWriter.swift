/// Compact JSON output, byte-for-byte what JavaScript's `JSON.stringify` writes,
/// appended to the caller's buffer.
public enum JSONWriter {
    public static func write(_ value: JSON, to out: inout [UInt8]) {
        switch value {
        case .null:
            JSONNumberFormat.appendNull(to: &out)
        case .bool(let b):
            if b {
                appendASCII("true", to: &out)
            } else {
                appendASCII("false", to: &out)
            }
        case .number(let d):
            JSONNumberFormat.write(d, to: &out)
        case .string(let s):
            writeString(s, to: &out)
        case .array(let elements):
            out.append(UInt8(ascii: "["))
            var first = true
            for element in elements {
                if !first { out.append(UInt8(ascii: ",")) }
                first = false
                write(element, to: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .object(let object):
            writeObject(object, to: &out)
        }
    }

    public static func writeObject(_ object: JSONObject, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "{"))
        var first = true
        for (key, value) in object {
            if !first { out.append(UInt8(ascii: ",")) }
            first = false
            writeString(key, to: &out)
            out.append(UInt8(ascii: ":"))
            write(value, to: &out)
        }
        out.append(UInt8(ascii: "}"))
    }

    /// A quoted string, escaped exactly as `JSON.stringify` does: `\"` `\\` `\b` `\f`
    /// `\n` `\r` `\t`, other bytes below 0x20 as `\u00xx` (lowercase hex), everything
    /// else as raw UTF-8 (U+2028 and U+2029 included).
    public static func writeString(_ s: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        var s = s
        s.withUTF8 { writeEscapedContent(UnsafeRawBufferPointer($0), to: &out) }
        out.append(UInt8(ascii: "\""))
    }

    /// Appends already-valid UTF-8 `bytes` as a quoted, escaped JSON string.
    public static func writeString(utf8 bytes: UnsafeRawBufferPointer, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        writeEscapedContent(bytes, to: &out)
        out.append(UInt8(ascii: "\""))
    }

    static func writeEscapedContent(_ bytes: UnsafeRawBufferPointer, to out: inout [UInt8]) {
        var runStart = 0
        var i = 0
        let n = bytes.count
        while i < n {
            let c = bytes[i]
            if c >= 0x20 && c != UInt8(ascii: "\"") && c != UInt8(ascii: "\\") {
                i += 1
                continue
            }
            if runStart < i {
                out.appendRaw(UnsafeRawBufferPointer(rebasing: bytes[runStart..<i]))
            }
            out.append(UInt8(ascii: "\\"))
            switch c {
            case UInt8(ascii: "\""): out.append(UInt8(ascii: "\""))
            case UInt8(ascii: "\\"): out.append(UInt8(ascii: "\\"))
            case 0x08: out.append(UInt8(ascii: "b"))
            case 0x0C: out.append(UInt8(ascii: "f"))
            case 0x0A: out.append(UInt8(ascii: "n"))
            case 0x0D: out.append(UInt8(ascii: "r"))
            case 0x09: out.append(UInt8(ascii: "t"))
            default:
                out.append(UInt8(ascii: "u"))
                out.append(UInt8(ascii: "0"))
                out.append(UInt8(ascii: "0"))
                out.append(hexDigit(c >> 4))
                out.append(hexDigit(c & 0x0F))
            }
            i += 1
            runStart = i
        }
        if runStart < n {
            out.appendRaw(UnsafeRawBufferPointer(rebasing: bytes[runStart..<n]))
        }
    }

    @inline(__always)
    static func hexDigit(_ v: UInt8) -> UInt8 {
        v < 10 ? v &+ 48 : v &+ 87
    }

    /// Exactly JavaScript's `Number.prototype.toString` / `JSON.stringify` output:
    /// NaN and ±Infinity as `null`, -0 as `0`, integers below 1e21 as plain digits,
    /// otherwise the shortest round-trip digits in JS's decimal or exponent layout.
    @inlinable
    public static func writeNumber(_ d: Double, to out: inout [UInt8]) {
        JSONNumberFormat.write(d, to: &out)
    }

    /// `i` in decimal, without allocating.
    @inlinable
    public static func writeInt(_ i: Int, to out: inout [UInt8]) {
        JSONNumberFormat.writeInt64(Int64(i), to: &out)
    }

    /// Appends static ASCII text (a key, a punctuation run) with one copy.
    @inlinable
    public static func appendASCII(_ text: StaticString, to out: inout [UInt8]) {
        out.append(contentsOf: UnsafeBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }

    /// The compact JSON text of `value` as a new byte array.
    public static func bytes(_ value: JSON) -> [UInt8] {
        var out: [UInt8] = []
        write(value, to: &out)
        return out
    }
}
