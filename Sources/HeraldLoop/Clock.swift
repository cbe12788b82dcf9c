import CHeraldSystem

/// Time as the loop sees it.
public enum Clock {
    /// Monotonic nanoseconds, for deadlines and durations.
    @inline(__always) public static func monotonicNanos() -> UInt64 { herald_monotonic_ns() }
    /// Milliseconds since the epoch, for the protocol's timestamps.
    @inline(__always) public static func wallMillis() -> Int { Int(herald_wall_ms()) }
}
