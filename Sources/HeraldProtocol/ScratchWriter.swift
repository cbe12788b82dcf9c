import Glibc

/// Bytes written through a raw pointer into a fixed buffer (on the caller's stack), for
/// small replies: each `Array.append(contentsOf:)` costs ~190 instructions, so a reply
/// is assembled here and appended to the output with one copy. Every write checks the
/// room left; once something did not fit, `overflowed` is set and the caller falls back
/// to the general writer.
struct ScratchWriter: TextOutputStream {
    let base: UnsafeMutablePointer<UInt8>
    let capacity: Int
    private(set) var count = 0
    private(set) var overflowed = false

    init(_ buffer: UnsafeMutableBufferPointer<UInt8>) {
        base = buffer.baseAddress!
        capacity = buffer.count
    }

    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }

    @inline(__always)
    mutating func byte(_ b: UInt8) {
        guard count < capacity else { overflowed = true; return }
        base[count] = b
        count &+= 1
    }

    mutating func raw(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count <= capacity &- count else { overflowed = true; return }
        if let source = bytes.baseAddress, bytes.count > 0 { memcpy(base + count, source, bytes.count) }
        count &+= bytes.count
    }

    @inline(__always)
    mutating func ascii(_ text: StaticString) {
        raw(UnsafeRawBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }

    /// A quoted JSON string, escaped as `JSONWriter.writeString` escapes it.
    mutating func string(_ s: String) {
        var s = s
        s.withUTF8 { utf8 in
            // Worst case: every byte as \u00XX, plus the quotes.
            guard utf8.count &* 6 &+ 2 <= capacity &- count else { overflowed = true; return }
            let out = base
            var at = count
            out[at] = UInt8(ascii: "\""); at &+= 1
            for c in utf8 {
                if c >= 0x20 && c != UInt8(ascii: "\"") && c != UInt8(ascii: "\\") {
                    out[at] = c; at &+= 1
                    continue
                }
                out[at] = UInt8(ascii: "\\"); at &+= 1
                switch c {
                case UInt8(ascii: "\""): out[at] = UInt8(ascii: "\""); at &+= 1
                case UInt8(ascii: "\\"): out[at] = UInt8(ascii: "\\"); at &+= 1
                case 0x08: out[at] = UInt8(ascii: "b"); at &+= 1
                case 0x0C: out[at] = UInt8(ascii: "f"); at &+= 1
                case 0x0A: out[at] = UInt8(ascii: "n"); at &+= 1
                case 0x0D: out[at] = UInt8(ascii: "r"); at &+= 1
                case 0x09: out[at] = UInt8(ascii: "t"); at &+= 1
                default:
                    out[at] = UInt8(ascii: "u"); out[at &+ 1] = UInt8(ascii: "0"); out[at &+ 2] = UInt8(ascii: "0")
                    out[at &+ 3] = JSONWriter.hexDigit(c >> 4); out[at &+ 4] = JSONWriter.hexDigit(c & 0x0F)
                    at &+= 5
                }
            }
            out[at] = UInt8(ascii: "\""); at &+= 1
            count = at
        }
    }

    /// `i` in decimal.
    mutating func int(_ i: Int64) {
        guard capacity &- count >= 20 else { overflowed = true; return }
        var v = i.magnitude
        if i < 0 { base[count] = UInt8(ascii: "-"); count &+= 1 }
        // Digits backwards into the end of the room, then moved into place.
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)
        let n = withUnsafeMutableBytes(of: &digits) { room -> Int in
            var k = 24
            repeat {
                k &-= 1
                room[k] = UInt8(truncatingIfNeeded: v % 10) &+ 48
                v /= 10
            } while v != 0
            memcpy(base + count, room.baseAddress! + k, 24 &- k)
            return 24 &- k
        }
        count &+= n
    }

    /// A number as `JSONNumberFormat.write` writes it; false (nothing written) for the
    /// layouts it re-lays-out (exponents, integers at or above 2^53): use the general path.
    mutating func number(_ d: Double) -> Bool {
        if d.magnitude < JSONNumberFormat.exactIntegerLimit {
            let i = Int64(d)
            if Double(i) == d {
                int(i)
                return true
            }
            // Non-integral: Swift's shortest digits are JavaScript's, unless in exponent form.
            let start = count
            d.write(to: &self)
            var k = start
            while k < count {
                if base[k] == UInt8(ascii: "e") {
                    count = start
                    return false
                }
                k &+= 1
            }
            return true
        }
        if !d.isFinite {
            ascii("null")
            return true
        }
        return false
    }

    // TextOutputStream, for `Double.write(to:)` (which hands its digits to `_writeASCII`).
    mutating func write(_ string: String) {
        var string = string
        string.withUTF8 { raw(UnsafeRawBufferPointer($0)) }
    }

    mutating func _writeASCII(_ buffer: UnsafeBufferPointer<UInt8>) {
        raw(UnsafeRawBufferPointer(buffer))
    }
}
