/// Strict UTF-8 checking (RFC 3629: no overlong forms, no surrogates, nothing above
/// U+10FFFF), with an eight-bytes-at-a-time path for ASCII.
public enum UTF8Validation {
    /// True when `bytes` is entirely valid UTF-8.
    @inlinable
    public static func isValid(_ bytes: UnsafeRawBufferPointer) -> Bool {
        firstInvalidOffset(bytes) == nil
    }

    /// The offset of the first byte of the first invalid sequence, or nil.
    public static func firstInvalidOffset(_ bytes: UnsafeRawBufferPointer) -> Int? {
        let n = bytes.count
        var i = 0
        while i < n {
            if i &+ 8 <= n {
                let word = bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self)
                if word & 0x8080_8080_8080_8080 == 0 {
                    i &+= 8
                    continue
                }
            }
            let c = bytes[i]
            if c < 0x80 {
                i &+= 1
                continue
            }
            if c < 0xC2 { return i }
            if c < 0xE0 {
                guard i + 1 < n, isContinuation(bytes[i + 1]) else { return i }
                i &+= 2
            } else if c < 0xF0 {
                guard i + 2 < n else { return i }
                let b1 = bytes[i + 1]
                let low: UInt8 = c == 0xE0 ? 0xA0 : 0x80
                let high: UInt8 = c == 0xED ? 0x9F : 0xBF
                guard b1 >= low, b1 <= high, isContinuation(bytes[i + 2]) else { return i }
                i &+= 3
            } else if c < 0xF5 {
                guard i + 3 < n else { return i }
                let b1 = bytes[i + 1]
                let low: UInt8 = c == 0xF0 ? 0x90 : 0x80
                let high: UInt8 = c == 0xF4 ? 0x8F : 0xBF
                guard b1 >= low, b1 <= high, isContinuation(bytes[i + 2]),
                      isContinuation(bytes[i + 3]) else { return i }
                i &+= 4
            } else {
                return i
            }
        }
        return nil
    }

    @inline(__always)
    static func isContinuation(_ b: UInt8) -> Bool { b & 0xC0 == 0x80 }
}

extension Array where Element == UInt8 {
    /// Appends raw bytes with one copy (through the contiguous-storage path of
    /// `append(contentsOf:)`).
    @inlinable
    public mutating func appendRaw(_ bytes: UnsafeRawBufferPointer) {
        bytes.withMemoryRebound(to: UInt8.self) { append(contentsOf: $0) }
    }
}
