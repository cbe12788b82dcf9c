/// Byte buffers lent to connections while they have output queued, so that a busy
/// connection does not allocate a buffer per batch of replies and an idle one holds none.
///
/// The free buffers are a stack in memory of its own (allocated at the first `give`,
/// kept for the worker's life): moved in and out, no array bookkeeping, no reference
/// counting on the way (at one request per flush, a give and a take per request).
struct BufferPool {
    private var slots: UnsafeMutablePointer<[UInt8]>?
    private var count = 0
    /// Buffers kept for reuse at most, and the largest capacity worth keeping.
    let maxBuffers = 1_024
    let maxCapacity = 64 * 1_024
    let initialCapacity = 1_024

    /// An empty buffer with some capacity.
    mutating func take() -> [UInt8] {
        if count > 0, let slots {
            count &-= 1
            return (slots + count).move()
        }
        var buffer: [UInt8] = []
        buffer.reserveCapacity(initialCapacity)
        return buffer
    }

    /// Takes `buffer` back (leaving it empty, without storage).
    mutating func give(_ buffer: inout [UInt8]) {
        var returned: [UInt8] = []
        swap(&returned, &buffer)
        guard count < maxBuffers, returned.capacity <= maxCapacity, returned.capacity > 0 else { return }
        returned.removeAll(keepingCapacity: true)
        let slots = self.slots ?? UnsafeMutablePointer<[UInt8]>.allocate(capacity: maxBuffers)
        self.slots = slots
        (slots + count).initialize(to: consume returned)
        count &+= 1
    }
}
