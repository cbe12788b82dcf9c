/// Splits a byte stream into request lines (PROTOCOL.md §1).
///
/// `\r` and `\n` each end a line, in any mix, across any split of reads; a `\r`
/// ends the line at once (so "\r\n" = a line and then an empty line). Empty lines
/// are not reported: the protocol ignores them. Lines are never trimmed.
public struct LineFramer {
    public enum Event {
        /// A complete non-empty line without its terminator. Valid only during the call.
        case line(UnsafeRawBufferPointer)
        /// A line passed `maxLineBytes`; reported once, the rest of it is discarded.
        case tooLong
    }

    /// A held buffer bigger than this is freed when its line completes.
    public static let retainedCapacityLimit = 16 * 1024

    public let maxLineBytes: Int

    /// The start of a line that has not ended yet. Empty (and usually unallocated)
    /// between lines.
    private var partial: [UInt8] = []
    /// True while skipping the rest of an over-long line.
    private var discarding = false

    public init(maxLineBytes: Int) {
        precondition(maxLineBytes > 0, "maxLineBytes must be positive")
        self.maxLineBytes = maxLineBytes
    }

    /// Bytes held for an incomplete line.
    public var bufferedByteCount: Int { partial.count }

    /// The capacity of the buffer held for incomplete lines (0 when none is held).
    public var bufferCapacity: Int { partial.capacity }

    /// True while the rest of an over-long line is being discarded.
    public var isDiscarding: Bool { discarding }

    /// Calls `body` for each complete non-empty line (without terminator) in order.
    ///
    /// A line longer than `maxLineBytes` is reported once as `.tooLong` as soon as it
    /// passes the limit, and the rest of it up to its terminator is discarded without
    /// being buffered. `body` returns false to stop: the rest of this chunk is
    /// dropped. A line wholly inside `chunk` is passed as a slice of `chunk`; only an
    /// incomplete tail is copied into the framer's buffer.
    public mutating func feed(_ chunk: UnsafeRawBufferPointer, _ body: (Event) throws -> Bool) rethrows {
        let n = chunk.count
        var i = 0
        while i < n {
            // Find the next terminator.
            var j = i
            while j < n {
                let c = chunk[j]
                if c == 0x0A || c == 0x0D { break }
                j &+= 1
            }
            if discarding {
                guard j < n else { return }
                discarding = false
                i = j &+ 1
                continue
            }
            if j == n {
                // An incomplete tail: keep it, unless that makes the line too long.
                let tailCount = n &- i
                if partial.count &+ tailCount > maxLineBytes {
                    releasePartial()
                    discarding = true
                    _ = try body(.tooLong)
                    return
                }
                partial.appendRaw(UnsafeRawBufferPointer(rebasing: chunk[i..<n]))
                return
            }
            // A line ends at j.
            let keepGoing: Bool
            if partial.isEmpty {
                let count = j &- i
                if count == 0 {
                    keepGoing = true
                } else if count > maxLineBytes {
                    keepGoing = try body(.tooLong)
                } else {
                    keepGoing = try body(.line(UnsafeRawBufferPointer(rebasing: chunk[i..<j])))
                }
            } else if partial.count &+ (j &- i) > maxLineBytes {
                releasePartial()
                keepGoing = try body(.tooLong)
            } else {
                partial.appendRaw(UnsafeRawBufferPointer(rebasing: chunk[i..<j]))
                keepGoing = try completePartial(body)
            }
            guard keepGoing else { return }
            i = j &+ 1
        }
    }

    /// Reports the buffered line and empties the buffer, even when `body` throws.
    private mutating func completePartial(_ body: (Event) throws -> Bool) rethrows -> Bool {
        defer { releasePartial() }
        return try partial.withUnsafeBytes { try body(.line($0)) }
    }

    private mutating func releasePartial() {
        if partial.capacity > LineFramer.retainedCapacityLimit {
            partial = []
        } else {
            partial.removeAll(keepingCapacity: true)
        }
    }

    /// Forgets any incomplete line and the discarding state.
    public mutating func reset() {
        partial = []
        discarding = false
    }
}
