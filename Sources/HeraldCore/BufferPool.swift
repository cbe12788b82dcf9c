/// Byte buffers lent to connections while they have output queued, so that a busy
/// connection does not allocate a buffer per batch of replies and an idle one holds none.
struct BufferPool {
    private var free: [[UInt8]] = []
    /// Buffers kept for reuse at most, and the largest capacity worth keeping.
    let maxBuffers = 1_024
    let maxCapacity = 64 * 1_024
    let initialCapacity = 1_024

    /// An empty buffer with some capacity.
    mutating func take() -> [UInt8] {
        if let buffer = free.popLast() { return buffer }
        var buffer: [UInt8] = []
        buffer.reserveCapacity(initialCapacity)
        return buffer
    }

    /// Takes `buffer` back (leaving it empty, without storage).
    mutating func give(_ buffer: inout [UInt8]) {
        var returned: [UInt8] = []
        swap(&returned, &buffer)
        guard free.count < maxBuffers, returned.capacity <= maxCapacity, returned.capacity > 0 else { return }
        returned.removeAll(keepingCapacity: true)
        free.append(returned)
    }
}
