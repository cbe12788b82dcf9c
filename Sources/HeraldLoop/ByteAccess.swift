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
