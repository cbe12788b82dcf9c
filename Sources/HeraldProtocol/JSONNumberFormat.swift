/// Number text in both directions, the JavaScript way.
///
/// Writing follows ECMAScript `Number::toString` (what `JSON.stringify` uses);
/// reading turns an already-validated decimal literal into the nearest `Double`.
/// Neither direction allocates except for rare slow paths on the reading side.
public enum JSONNumberFormat {
    /// 2^53: below it every integer is a Double and its exact digits are JS's digits.
    @usableFromInline
    static let exactIntegerLimit: Double = 9_007_199_254_740_992

    // MARK: Writing

    /// Appends `d` exactly as JavaScript's `JSON.stringify` would.
    @inlinable
    public static func write(_ d: Double, to out: inout [UInt8]) {
        if d.magnitude < exactIntegerLimit {
            // Fast path: integral (ms timestamps, counters). -0 lands here as 0.
            // (Int64(d) truncates in one instruction; no libm call.)
            let i = Int64(d)
            if Double(i) == d {
                writeInt64(i, to: &out)
                return
            }
            writeShortest(d, to: &out)
        } else if d.isFinite {
            writeShortest(d, to: &out)
        } else {
            appendNull(to: &out)
        }
    }

    @usableFromInline
    static func appendNull(to out: inout [UInt8]) {
        out.append(UInt8(ascii: "n"))
        out.append(UInt8(ascii: "u"))
        out.append(UInt8(ascii: "l"))
        out.append(UInt8(ascii: "l"))
    }

    /// Appends `i` in decimal without allocating.
    @inlinable
    public static func writeInt64(_ i: Int64, to out: inout [UInt8]) {
        if i >= 0 && i < 10 {
            out.append(UInt8(truncatingIfNeeded: i) &+ 48)
            return
        }
        writeDecimal(i.magnitude, negative: i < 0, to: &out)
    }

    /// "00" "01" ... "99": two digits per division. (A literal, not a `static let`: no
    /// `swift_once` per use.)
    @usableFromInline
    static var digitPairs: UnsafePointer<UInt8> {
        let pairs: StaticString = """
            00010203040506070809101112131415161718192021222324252627282930313233343536373839\
            40414243444546474849505152535455565758596061626364656667686970717273747576777879\
            8081828384858687888990919293949596979899
            """
        return pairs.utf8Start
    }

    @usableFromInline
    static func writeDecimal(_ value: UInt64, negative: Bool, to out: inout [UInt8]) {
        let table = digitPairs
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 24) { buf in
            var i = 24
            var v = value
            while v >= 100 {
                let (q, r) = v.quotientAndRemainder(dividingBy: 100)
                let k = Int(truncatingIfNeeded: r) &* 2
                i &-= 2
                buf[i] = table[k]
                buf[i &+ 1] = table[k &+ 1]
                v = q
            }
            if v >= 10 {
                let k = Int(truncatingIfNeeded: v) &* 2
                i &-= 2
                buf[i] = table[k]
                buf[i &+ 1] = table[k &+ 1]
            } else {
                i &-= 1
                buf[i] = UInt8(truncatingIfNeeded: v) &+ 48
            }
            if negative {
                i &-= 1
                buf[i] = UInt8(ascii: "-")
            }
            out.append(contentsOf: UnsafeBufferPointer(rebasing: buf[i..<24]))
        }
    }

    /// The shortest round-trip digits (`ShortestDouble`), laid out the JavaScript way;
    /// `d` is finite and not zero.
    @usableFromInline
    static func writeShortest(_ d: Double, to out: inout [UInt8]) {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: ShortestDouble.maxBytes) { buffer in
            let n = ShortestDouble.write(d, to: buffer.baseAddress!)
            out.append(contentsOf: UnsafeBufferPointer(rebasing: buffer[0..<n]))
        }
    }

    /// What `writeShortest` wrote before `ShortestDouble`: Swift's own shortest
    /// round-trip digits (`Double.write(to:)`), re-laid-out the JavaScript way. Kept as
    /// the reference `ShortestDoubleTests` checks `ShortestDouble` against.
    static func writeShortestReference(_ d: Double, to out: inout [UInt8]) {
        var text = ASCIIScratch()
        d.write(to: &text)   // uses _writeASCII: no String is made
        text.withBytes { swiftText in
            // For a non-integral value Swift's decimal layout ("-123.456", "0.0001")
            // is JS's too: both print the shortest round-trip digits. The exponent
            // form, and integers at or above 2^53 ("9007199254740992.0"), need
            // re-laying-out.
            if d.magnitude < exactIntegerLimit && !swiftText.contains(UInt8(ascii: "e")) {
                out.appendRaw(swiftText)
                return
            }
            withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 32) { digits in
                // Swift writes "D.DDDe±X", "DDD.DDD" or "0.000DDD".
                // Collect every digit; value = 0.<digits> × 10^n.
                var k = 0
                var n = 0
                var seenPoint = false
                var exponent = 0
                var exponentNegative = false
                var inExponent = false
                for c in swiftText {
                    if inExponent {
                        if c == UInt8(ascii: "-") {
                            exponentNegative = true
                        } else if c >= 48 && c <= 57 {
                            exponent = exponent * 10 + Int(c &- 48)
                        }
                    } else if c == UInt8(ascii: ".") {
                        seenPoint = true
                    } else if c == UInt8(ascii: "e") || c == UInt8(ascii: "E") {
                        inExponent = true
                    } else if c >= 48 && c <= 57 {
                        if k == 0 && c == 48 {
                            // A leading zero: before the point it is nothing, after it a shift.
                            if seenPoint { n -= 1 }
                            continue
                        }
                        if k < 32 {
                            digits[k] = c
                            k += 1
                        }
                        if !seenPoint { n += 1 }
                    }
                }
                while k > 1 && digits[k - 1] == 48 { k -= 1 }
                if k == 0 {
                    // Only zeros: cannot happen for a non-zero finite value.
                    out.append(48)
                    return
                }
                n += exponentNegative ? -exponent : exponent
                if d < 0 { out.append(UInt8(ascii: "-")) }
                let digitBytes = UnsafeBufferPointer(rebasing: digits[0..<k])
                if k <= n && n <= 21 {
                    out.append(contentsOf: digitBytes)
                    for _ in 0..<(n - k) { out.append(48) }
                } else if 0 < n && n <= 21 {
                    out.append(contentsOf: UnsafeBufferPointer(rebasing: digits[0..<n]))
                    out.append(UInt8(ascii: "."))
                    out.append(contentsOf: UnsafeBufferPointer(rebasing: digits[n..<k]))
                } else if -6 < n && n <= 0 {
                    out.append(48)
                    out.append(UInt8(ascii: "."))
                    for _ in 0..<(-n) { out.append(48) }
                    out.append(contentsOf: digitBytes)
                } else {
                    out.append(digits[0])
                    if k > 1 {
                        out.append(UInt8(ascii: "."))
                        out.append(contentsOf: UnsafeBufferPointer(rebasing: digits[1..<k]))
                    }
                    out.append(UInt8(ascii: "e"))
                    let e = n - 1
                    out.append(e < 0 ? UInt8(ascii: "-") : UInt8(ascii: "+"))
                    writeDecimal(UInt64(e.magnitude), negative: false, to: &out)
                }
            }
        }
    }

    // MARK: Reading

    /// Exact powers of ten that a Double holds: 1e0 ... 1e22.
    static let exactPowersOfTen: [Double] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
        1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
    ]

    /// The nearest Double to a decimal literal already checked against
    /// `[+-]? (digits ("." digits?)? | "." digits) ([eE] [+-]? digits)?`.
    static func value(ofValidatedLiteral text: UnsafeRawBufferPointer) -> Double {
        var i = 0
        let end = text.count
        var negative = false
        if i < end && (text[i] == UInt8(ascii: "-") || text[i] == UInt8(ascii: "+")) {
            negative = text[i] == UInt8(ascii: "-")
            i += 1
        }
        var mantissa: UInt64 = 0
        var significantDigits = 0
        var fractionDigits = 0
        var exact = true
        var seenPoint = false
        while i < end {
            let c = text[i]
            if c == UInt8(ascii: ".") {
                seenPoint = true
            } else if c >= 48 && c <= 57 {
                if mantissa != 0 || c != 48 { significantDigits += 1 }
                if significantDigits > 19 {
                    exact = false
                    break
                }
                mantissa = mantissa &* 10 &+ UInt64(c &- 48)
                if seenPoint { fractionDigits += 1 }
            } else {
                break
            }
            i += 1
        }
        var exponent = 0
        if exact && i < end {
            // i is at "e" or "E".
            i += 1
            var exponentNegative = false
            if i < end && (text[i] == UInt8(ascii: "-") || text[i] == UInt8(ascii: "+")) {
                exponentNegative = text[i] == UInt8(ascii: "-")
                i += 1
            }
            while i < end {
                if exponent < 100_000 { exponent = exponent * 10 + Int(text[i] &- 48) }
                i += 1
            }
            if exponentNegative { exponent = -exponent }
        }
        if exact {
            if mantissa == 0 { return negative ? -0.0 : 0.0 }
            let e10 = exponent - fractionDigits
            if mantissa <= 9_007_199_254_740_992 && e10 >= -22 && e10 <= 22 {
                // Clinger's fast path: both operands exact, one correctly rounded step.
                let m = Double(mantissa)
                let v = e10 < 0 ? m / exactPowersOfTen[-e10] : m * exactPowersOfTen[e10]
                return negative ? -v : v
            }
        }
        // Rare: long mantissas or large exponents. The stdlib parser rounds correctly.
        return Double(String(decoding: text, as: UTF8.self)) ?? .nan
    }

    /// JavaScript `Number(s)` restricted to plain decimal strings (see `JSON.numberValue`).
    public static func parseDecimalString(_ s: String) -> Double? {
        var s = s
        return s.withUTF8 { utf8 in
            parseDecimal(UnsafeRawBufferPointer(utf8))
        }
    }

    /// `parseDecimalString` over bytes.
    public static func parseDecimal(_ bytes: UnsafeRawBufferPointer) -> Double? {
        var start = 0
        var end = bytes.count
        while start < end && isASCIIWhitespace(bytes[start]) { start += 1 }
        while end > start && isASCIIWhitespace(bytes[end - 1]) { end -= 1 }
        var i = start
        if i < end && (bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-")) { i += 1 }
        var digits = 0
        while i < end && isDigit(bytes[i]) { i += 1; digits += 1 }
        if i < end && bytes[i] == UInt8(ascii: ".") {
            i += 1
            while i < end && isDigit(bytes[i]) { i += 1; digits += 1 }
        }
        guard digits > 0 else { return nil }
        if i < end && (bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E")) {
            i += 1
            if i < end && (bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-")) { i += 1 }
            var exponentDigits = 0
            while i < end && isDigit(bytes[i]) { i += 1; exponentDigits += 1 }
            guard exponentDigits > 0 else { return nil }
        }
        guard i == end else { return nil }
        return value(ofValidatedLiteral: UnsafeRawBufferPointer(rebasing: bytes[start..<end]))
    }

    @inline(__always)
    static func isDigit(_ c: UInt8) -> Bool { c &- 48 < 10 }

    @inline(__always)
    static func isASCIIWhitespace(_ c: UInt8) -> Bool {
        c == 0x20 || (c >= 0x09 && c <= 0x0D)
    }
}

/// A fixed 32-byte text sink for Double's `write(to:)`, which hands its digits to
/// `_writeASCII` (no String is created on that path).
@usableFromInline
struct ASCIIScratch: TextOutputStream {
    var storage: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
    var count = 0

    @usableFromInline
    init() {}

    mutating func append(_ bytes: UnsafeRawBufferPointer) {
        let n = min(bytes.count, 32 - count)
        guard n > 0 else { return }
        let at = count
        withUnsafeMutableBytes(of: &storage) { storage in
            UnsafeMutableRawBufferPointer(rebasing: storage[at..<(at + n)])
                .copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[0..<n]))
        }
        count += n
    }

    @usableFromInline
    mutating func write(_ string: String) {
        var string = string
        string.withUTF8 { append(UnsafeRawBufferPointer($0)) }
    }

    @usableFromInline
    mutating func _writeASCII(_ buffer: UnsafeBufferPointer<UInt8>) {
        append(UnsafeRawBufferPointer(buffer))
    }

    mutating func withBytes<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R {
        let n = count
        return withUnsafeBytes(of: &storage) { body(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
    }
}
