import Glibc

/// Bytes written through a raw pointer into a fixed buffer (on the caller's stack), for
/// small replies: each `Array.append(contentsOf:)` costs ~190 instructions, so a reply
/// is assembled here and appended to the output with one copy. Every write checks the
/// room left; once something did not fit, `overflowed` is set and the caller falls back
/// to the general writer.
struct ScratchWriter {
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
        let n = text.utf8CodeUnitCount
        guard n <= capacity &- count else { overflowed = true; return }
        memcpy(base + count, text.utf8Start, n)
        count &+= n
    }

    /// A quoted JSON string, escaped as `JSONWriter.writeString` escapes it.
    mutating func string(_ s: String) {
        var s = s
        s.withUTF8 { utf8 in
            guard let source = utf8.baseAddress else {
                ascii("\"\"")
                return
            }
            quoted(UnsafeRawPointer(source), utf8.count)
        }
    }

    /// An object key, quoted and followed by ":"; false (nothing written) for the keys
    /// an action reply reserves ("error", "context", "messageCount").
    mutating func key(_ s: String) -> Bool {
        var s = s
        return s.withUTF8 { utf8 -> Bool in
            guard let source = utf8.baseAddress else {
                ascii("\"\":")
                return true
            }
            let n = utf8.count
            switch n {
            case 5: if memcmp(source, ("error" as StaticString).utf8Start, 5) == 0 { return false }
            case 7: if memcmp(source, ("context" as StaticString).utf8Start, 7) == 0 { return false }
            case 12: if memcmp(source, ("messageCount" as StaticString).utf8Start, 12) == 0 { return false }
            default: break
            }
            quoted(UnsafeRawPointer(source), n)
            byte(UInt8(ascii: ":"))
            return true
        }
    }

    /// `n` bytes of UTF-8 at `source` as a quoted, escaped JSON string.
    @inline(__always)
    private mutating func quoted(_ source: UnsafeRawPointer, _ n: Int) {
        // Worst case: every byte as \u00XX, plus the quotes.
        guard n &* 6 &+ 2 <= capacity &- count else { overflowed = true; return }
        let out = base
        var at = count
        out[at] = UInt8(ascii: "\"")
        at &+= 1
        if !ScratchWriter.needsEscaping(source, n) {
            memcpy(out + at, source, n)
            at &+= n
            out[at] = UInt8(ascii: "\"")
            count = at &+ 1
            return
        }
        let utf8 = UnsafeBufferPointer(start: source.assumingMemoryBound(to: UInt8.self), count: n)
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

    /// Whether any of the `n` bytes at `p` is a control character, `"` or `\\` (eight
    /// bytes at a time: the exact "has a zero byte" / "has a byte below" word tests).
    @inline(__always)
    static func needsEscaping(_ p: UnsafeRawPointer, _ n: Int) -> Bool {
        @inline(__always)
        func word(_ w: UInt64) -> Bool {
            let ones: UInt64 = 0x0101_0101_0101_0101
            let highs: UInt64 = 0x8080_8080_8080_8080
            let quote = w ^ (ones &* 0x22)
            let backslash = w ^ (ones &* 0x5C)
            let below = (w &- ones &* 0x20) & ~w
            let q = (quote &- ones) & ~quote
            let b = (backslash &- ones) & ~backslash
            return (below | q | b) & highs != 0
        }
        if n >= 8 {
            var i = 0
            while i &+ 8 <= n {
                if word(p.loadUnaligned(fromByteOffset: i, as: UInt64.self)) { return true }
                i &+= 8
            }
            // The last (overlapping) eight bytes.
            return i < n && word(p.loadUnaligned(fromByteOffset: n &- 8, as: UInt64.self))
        }
        var i = 0
        while i < n {
            let c = p.load(fromByteOffset: i, as: UInt8.self)
            if c < 0x20 || c == UInt8(ascii: "\"") || c == UInt8(ascii: "\\") { return true }
            i &+= 1
        }
        return false
    }

    /// `i` in decimal.
    mutating func int(_ i: Int64) {
        guard capacity &- count >= 20 else { overflowed = true; return }
        var v = i.magnitude
        var at = count
        if i < 0 { base[at] = UInt8(ascii: "-"); at &+= 1 }
        // How many digits (an Int64's magnitude has at most 19).
        var digits = 1
        var power: UInt64 = 10
        while digits < 19 && v >= power {
            digits &+= 1
            power = power &* 10
        }
        let table = JSONNumberFormat.digitPairs
        var k = at &+ digits
        count = k
        while v >= 100 {
            let q = v / 100
            let r = Int(truncatingIfNeeded: v &- q &* 100) &* 2
            k &-= 2
            base[k] = table[r]
            base[k &+ 1] = table[r &+ 1]
            v = q
        }
        if v >= 10 {
            let r = Int(truncatingIfNeeded: v) &* 2
            base[at] = table[r]
            base[at &+ 1] = table[r &+ 1]
        } else {
            base[at] = UInt8(truncatingIfNeeded: v) &+ 48
        }
    }

    /// A number as `JSONNumberFormat.write` writes it (true; on overflow `overflowed`
    /// is set).
    mutating func number(_ d: Double) -> Bool {
        if d.magnitude < JSONNumberFormat.exactIntegerLimit {
            let i = Int64(d)
            if Double(i) == d {
                int(i)
                return true
            }
        } else if !d.isFinite {
            ascii("null")
            return true
        }
        guard capacity &- count >= ShortestDouble.maxBytes else {
            overflowed = true
            return true
        }
        count &+= ShortestDouble.write(d, to: base + count)
        return true
    }
}
