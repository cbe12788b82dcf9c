import Glibc

/// Telnet break detection (PROTOCOL.md §8).
public enum TelnetBreak {
    /// True when the read chunk is exactly the single byte 0x04 (Ctrl-D), or
    /// contains `ff f4 ff fd 06` (telnet's interrupt-process, sent for Ctrl-C).
    public static func isBreak(_ chunk: UnsafeRawBufferPointer) -> Bool {
        let n = chunk.count
        if n == 1 { return chunk[0] == 0x04 }
        guard n >= 5, let base = chunk.baseAddress else { return false }
        // Most chunks hold no 0xFF at all: memchr says so in a few instructions.
        guard let found = memchr(base, 0xFF, n) else { return false }
        var i = base.distance(to: UnsafeRawPointer(found))
        while i &+ 5 <= n {
            if chunk[i] == 0xFF && chunk[i &+ 1] == 0xF4 && chunk[i &+ 2] == 0xFF
                && chunk[i &+ 3] == 0xFD && chunk[i &+ 4] == 0x06 {
                return true
            }
            i &+= 1
        }
        return false
    }
}
