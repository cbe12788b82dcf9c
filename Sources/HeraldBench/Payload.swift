/// The fanout message payload `p<publisher>:s<sequence>:t<send time in µs>`: no spaces,
/// no JSON escaping needed, so it travels unchanged through `say` and `PUBLISH`.
enum Payload {
    /// Writes the payload at `out` (room for at least 64 bytes); returns its length.
    static func write(publisher: Int, sequence: Int, micros: UInt64, to out: UnsafeMutablePointer<UInt8>) -> Int {
        var n = 0
        out[n] = UInt8(ascii: "p"); n += 1
        n += digits(UInt64(publisher), out + n)
        out[n] = UInt8(ascii: ":"); out[n + 1] = UInt8(ascii: "s"); n += 2
        n += digits(UInt64(sequence), out + n)
        out[n] = UInt8(ascii: ":"); out[n + 1] = UInt8(ascii: "t"); n += 2
        n += digits(micros, out + n)
        return n
    }

    static func digits(_ value: UInt64, _ out: UnsafeMutablePointer<UInt8>) -> Int {
        var v = value
        var tmp: (UInt64, UInt64, UInt64) = (0, 0, 0)   // 24 bytes of scratch, no allocation
        return withUnsafeMutableBytes(of: &tmp) { scratch in
            var k = 0
            repeat {
                scratch[k] = UInt8(ascii: "0") + UInt8(v % 10)
                v /= 10
                k += 1
            } while v > 0
            for i in 0..<k { out[i] = scratch[k - 1 - i] }
            return k
        }
    }

    /// Parses a payload that starts at `bytes` (it may be followed by other bytes, e.g. a
    /// closing quote). Nil when it is not one of ours.
    static func parse(_ bytes: UnsafeBufferPointer<UInt8>) -> (publisher: Int, sequence: Int, micros: UInt64)? {
        var i = 0
        func expect(_ c: UInt8) -> Bool {
            guard i < bytes.count, bytes[i] == c else { return false }
            i += 1
            return true
        }
        func number() -> UInt64? {
            var value: UInt64 = 0
            let first = i
            while i < bytes.count, bytes[i] >= 0x30, bytes[i] <= 0x39, i - first < 19 {
                value = value * 10 + UInt64(bytes[i] - 0x30)
                i += 1
            }
            return i > first ? value : nil
        }
        guard expect(UInt8(ascii: "p")), let p = number(), expect(UInt8(ascii: ":")),
              expect(UInt8(ascii: "s")), let s = number(), expect(UInt8(ascii: ":")),
              expect(UInt8(ascii: "t")), let t = number(), p <= UInt64(Int32.max), s <= UInt64(Int.max)
        else { return nil }
        return (Int(p), Int(s), t)
    }
}
