import Glibc

/// A minimal RESP2 reader over buffered bytes: finds where one complete value ends and,
/// for a top-level array, where its first few bulk-string elements are. No allocation.
package final class RESPReader {
    package static let maxElements = 4
    /// Type byte of the last value read: `+ - : $ *`.
    package private(set) var kind: UInt8 = 0
    /// Top-level array length (or -1 for a null array/bulk).
    package private(set) var count = 0
    private let slots = UnsafeMutablePointer<Int>.allocate(capacity: 2 * RESPReader.maxElements)
    private var base: UnsafePointer<UInt8>?

    deinit { slots.deallocate() }

    package struct Malformed: Error { let offset: Int }

    package init() {}

    /// The byte length of the complete value at the start of `bytes`, or nil when more
    /// bytes are needed. Throws on bytes that are not RESP.
    package func read(_ bytes: UnsafeBufferPointer<UInt8>) throws -> Int? {
        guard let b = bytes.baseAddress, !bytes.isEmpty else { return nil }
        base = b
        kind = b[0]
        count = 0
        for i in 0..<(2 * RESPReader.maxElements) { slots[i] = 0 }
        return try value(b, bytes.count, at: 0, depth: 0)
    }

    /// Bulk element `i` of the last top-level array (empty when absent or not a bulk).
    package func element(_ i: Int) -> UnsafeBufferPointer<UInt8> {
        guard i < RESPReader.maxElements, let base else { return UnsafeBufferPointer(start: nil, count: 0) }
        return UnsafeBufferPointer(start: base + slots[2 * i], count: slots[2 * i + 1])
    }

    /// Longest bulk string or array a header may announce (Redis's own bulk limit is
    /// 512 MB), and the deepest nesting: anything beyond is not from a Redis server.
    static let maxLength = 1 << 32
    static let maxDepth = 64

    /// Where the `\r\n`-terminated header starting at `at` ends (index past `\n`), and
    /// its integer value when `numeric` (a length: digits only, or a negative number for
    /// null, and at most `maxLength`; anything else is malformed).
    private func header(_ b: UnsafePointer<UInt8>, _ n: Int, at: Int, numeric: Bool) throws -> (end: Int, number: Int)? {
        guard at + 1 < n, let nl = memchr(b + at + 1, 0x0A, n - at - 1) else { return nil }
        let lineEnd = UnsafePointer<UInt8>(nl.assumingMemoryBound(to: UInt8.self)) - b
        guard lineEnd > at + 1, b[lineEnd - 1] == 0x0D else { throw Malformed(offset: at) }
        guard numeric else { return (lineEnd + 1, 0) }
        var value = 0
        var negative = false
        var i = at + 1
        if b[i] == UInt8(ascii: "-") { negative = true; i += 1 }
        guard i < lineEnd - 1 else { throw Malformed(offset: at) }
        while i < lineEnd - 1 {
            let d = b[i]
            guard d >= 0x30 && d <= 0x39, value <= RESPReader.maxLength else { throw Malformed(offset: i) }
            value = value * 10 + Int(d - 0x30)
            i += 1
        }
        guard value <= RESPReader.maxLength else { throw Malformed(offset: at) }
        return (lineEnd + 1, negative ? -value : value)
    }

    private func value(_ b: UnsafePointer<UInt8>, _ n: Int, at: Int, depth: Int) throws -> Int? {
        guard at < n else { return nil }
        let top = depth == 0
        switch b[at] {
        case UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: ":"):
            guard let h = try header(b, n, at: at, numeric: false) else { return nil }
            return h.end
        case UInt8(ascii: "$"):
            guard let h = try header(b, n, at: at, numeric: true) else { return nil }
            if h.number < 0 { return h.end }
            let end = h.end + h.number + 2
            guard end <= n else { return nil }
            guard b[end - 2] == 0x0D, b[end - 1] == 0x0A else { throw Malformed(offset: end - 2) }
            return end
        case UInt8(ascii: "*"):
            guard depth < RESPReader.maxDepth else { throw Malformed(offset: at) }
            guard let h = try header(b, n, at: at, numeric: true) else { return nil }
            if top { count = h.number }
            var pos = h.end
            if h.number <= 0 { return pos }
            for i in 0..<h.number {
                if top && i < RESPReader.maxElements && pos < n && b[pos] == UInt8(ascii: "$") {
                    guard let eh = try header(b, n, at: pos, numeric: true) else { return nil }
                    slots[2 * i] = eh.end
                    slots[2 * i + 1] = max(0, eh.number)
                }
                guard let next = try value(b, n, at: pos, depth: depth + 1) else { return nil }
                pos = next
            }
            return pos
        default:
            throw Malformed(offset: at)
        }
    }
}

extension UnsafeBufferPointer where Element == UInt8 {
    func equals(_ text: StaticString) -> Bool {
        count == text.utf8CodeUnitCount && (count == 0 || memcmp(baseAddress!, text.utf8Start, count) == 0)
    }
}
