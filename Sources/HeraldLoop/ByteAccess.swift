import Glibc

extension Array where Element == UInt8 {
    /// `withUnsafeBytes` for code isolated to the loop. Swift checks at run time, on
    /// every call, that an isolated closure handed to the standard library's
    /// `withUnsafeBytes` runs on its actor (about 400 instructions here); a closure handed
    /// to this function is checked at compile time only.
    @inline(__always)
    public func withBytes<Result>(_ body: (UnsafeRawBufferPointer) throws -> Result) rethrows -> Result {
        try withUnsafeBytes { try body($0) }
    }
}

extension UnsafeRawBufferPointer {
    /// Whether both hold the same bytes (memcmp; no closures, no generic iteration).
    @inline(__always)
    public func hasSameBytes(as other: UnsafeRawBufferPointer) -> Bool {
        guard count == other.count else { return false }
        guard count > 0, let a = baseAddress, let b = other.baseAddress else { return true }
        return memcmp(a, b, count) == 0
    }
}
