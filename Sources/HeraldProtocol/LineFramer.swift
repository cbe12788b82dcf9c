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

    /// What the caller of `feedHoldable(_:_:)` wants after each event.
    public enum Next {
        /// Go on with the next line.
        case proceed
        /// Stop: the rest of this chunk is dropped.
        case stop
        /// Stop for now: the rest of this chunk is kept, unparsed, until `resume`.
        case hold
    }

    /// Bytes received but not parsed yet, kept by a `.hold` (from `heldStart` on).
    private var held: [UInt8] = []
    private var heldStart = 0

    /// Lines started so far: counts each time an incomplete line begins to be buffered
    /// (or discarded), so that a caller can tell a new unfinished line from an old one.
    public private(set) var linesStarted: UInt = 0

    /// True while an incomplete line is buffered or being discarded.
    public var hasPartialLine: Bool { !partial.isEmpty || discarding }

    /// True while bytes kept by a `.hold` wait for `resume`.
    public var hasHeldInput: Bool { heldStart < held.count }

    /// Bytes kept by a `.hold`.
    public var heldByteCount: Int { held.count - heldStart }

    /// Calls `body` for each complete non-empty line (without terminator) in order.
    ///
    /// A line longer than `maxLineBytes` is reported once as `.tooLong` as soon as it
    /// passes the limit, and the rest of it up to its terminator is discarded without
    /// being buffered. `body` returns false to stop: the rest of this chunk is
    /// dropped. A line wholly inside `chunk` is passed as a slice of `chunk`; only an
    /// incomplete tail is copied into the framer's buffer.
    public mutating func feed(_ chunk: UnsafeRawBufferPointer, _ body: (Event) throws -> Bool) rethrows {
        _ = try scan(chunk) { try body($0) ? .proceed : .stop }
    }

    /// Like `feed(_:_:)`, but `body` may also answer `.hold`: parsing stops after that
    /// line and the rest of the chunk is kept (`hasHeldInput`) until `resume`. A chunk
    /// fed while input is held is appended to it, so nothing is lost or reordered.
    public mutating func feedHoldable(_ chunk: UnsafeRawBufferPointer, _ body: (Event) throws -> Next) rethrows {
        if hasHeldInput {
            held.appendRaw(chunk)
            return
        }
        let used = try scan(chunk, body)
        if used < chunk.count {
            held.removeAll(keepingCapacity: true)
            held.appendRaw(UnsafeRawBufferPointer(rebasing: chunk[used...]))
            heldStart = 0
        }
    }

    /// Parses the input a `.hold` kept, with the same contract as `feedHoldable(_:_:)`
    /// (it may hold again). Does nothing when no input is held.
    public mutating func resume(_ body: (Event) throws -> Next) rethrows {
        guard hasHeldInput else { return }
        var buffer: [UInt8] = []
        swap(&buffer, &held)
        let start = heldStart
        heldStart = 0
        var used = buffer.count - start
        defer {
            if start + used < buffer.count {
                held = buffer
                heldStart = start + used
            }
        }
        used = try buffer.withUnsafeBytes { try scan(UnsafeRawBufferPointer(rebasing: $0[start...]), body) }
    }

    /// Parses `chunk`; returns how many bytes it used (all of them, unless `body` held).
    private mutating func scan(_ chunk: UnsafeRawBufferPointer, _ body: (Event) throws -> Next) rethrows -> Int {
        let n = chunk.count
        var i = 0
        while i < n {
            // Find the next terminator.
            let j = LineFramer.terminator(in: chunk, from: i)
            if discarding {
                guard j < n else { return n }
                discarding = false
                i = j &+ 1
                continue
            }
            if j == n {
                // An incomplete tail: keep it, unless that makes the line too long.
                let tailCount = n &- i
                if partial.isEmpty { linesStarted &+= 1 }
                if partial.count &+ tailCount > maxLineBytes {
                    releasePartial()
                    discarding = true
                    _ = try body(.tooLong)
                    return n
                }
                partial.appendRaw(UnsafeRawBufferPointer(rebasing: chunk[i..<n]))
                return n
            }
            // A line ends at j.
            let next: Next
            if partial.isEmpty {
                let count = j &- i
                if count == 0 {
                    next = .proceed
                } else if count > maxLineBytes {
                    next = try body(.tooLong)
                } else {
                    next = try body(.line(UnsafeRawBufferPointer(rebasing: chunk[i..<j])))
                }
            } else if partial.count &+ (j &- i) > maxLineBytes {
                releasePartial()
                next = try body(.tooLong)
            } else {
                partial.appendRaw(UnsafeRawBufferPointer(rebasing: chunk[i..<j]))
                next = try completePartial(body)
            }
            switch next {
            case .proceed: i = j &+ 1
            case .stop: return n
            case .hold: return j &+ 1
            }
        }
        return n
    }

    /// The index of the first "\n" or "\r" in `chunk` at or after `start`; `chunk.count`
    /// when none. Eight bytes at a time (the exact "has a zero byte" word test, whose
    /// lowest flagged byte is the first match), the last few one by one.
    @inline(__always)
    static func terminator(in chunk: UnsafeRawBufferPointer, from start: Int) -> Int {
        let n = chunk.count
        guard let base = chunk.baseAddress else { return n }
        var j = start
        #if _endian(little)
        // (Little-endian: a borrow runs from a byte to the next one in memory, so no
        // byte before the first match is flagged.)
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highs: UInt64 = 0x8080_8080_8080_8080
        while j &+ 8 <= n {
            let w = base.loadUnaligned(fromByteOffset: j, as: UInt64.self)
            let lf = w ^ (ones &* 0x0A)
            let cr = w ^ (ones &* 0x0D)
            let found = (((lf &- ones) & ~lf) | ((cr &- ones) & ~cr)) & highs
            if found != 0 { return j &+ (found.trailingZeroBitCount >> 3) }
            j &+= 8
        }
        #endif
        while j < n {
            let c = base.load(fromByteOffset: j, as: UInt8.self)
            if c == 0x0A || c == 0x0D { return j }
            j &+= 1
        }
        return n
    }

    /// Reports the buffered line and empties the buffer, even when `body` throws.
    private mutating func completePartial(_ body: (Event) throws -> Next) rethrows -> Next {
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

    /// Every byte received but not parsed yet, in order: the input a `.hold` kept, or the
    /// start of an unfinished line (a connection handoff carries it to the next process).
    public var unparsed: [UInt8] {
        hasHeldInput ? Array(held[heldStart...]) : partial
    }

    /// A framer that goes on where another left off (`unparsed`, `isDiscarding`): the
    /// bytes are held, to be parsed by `resume` like any held input.
    public init(maxLineBytes: Int, resuming unparsed: [UInt8], discarding: Bool) {
        self.init(maxLineBytes: maxLineBytes)
        self.discarding = discarding
        if !unparsed.isEmpty {
            held = unparsed
            heldStart = 0
        }
    }

    /// Forgets any incomplete line, the discarding state and any held input.
    public mutating func reset() {
        partial = []
        discarding = false
        held = []
        heldStart = 0
    }
}
