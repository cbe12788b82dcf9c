import Glibc

/// Output buffers lent to connections while they have output queued, so that a busy
/// connection does not allocate a buffer per batch of replies and an idle one holds none.
///
/// The free blocks are a stack in memory of its own (allocated at the first `give`,
/// kept for the worker's life): a give and a take are a pointer moved each way (at one
/// request per flush, one of each per request).
struct BufferPool {
    private var slots: UnsafeMutablePointer<UnsafeMutableRawPointer>?
    private var count = 0
    /// Buffers kept for reuse at most, and the largest capacity worth keeping.
    let maxBuffers = 1_024
    let maxCapacity = 64 * 1_024
    let initialCapacity = 1_024

    /// An empty buffer with some capacity.
    mutating func take() -> OutputBuffer {
        if count > 0, let slots {
            count &-= 1
            return OutputBuffer(adopting: slots[count])
        }
        return OutputBuffer(capacity: initialCapacity)
    }

    /// Takes `buffer`'s storage back (leaving it without any); a block too big to keep,
    /// or one over `maxBuffers`, is freed.
    mutating func give(_ buffer: inout OutputBuffer) {
        guard let block = buffer.takeStorage() else { return }
        guard count < maxBuffers, OutputBuffer.capacity(of: block) <= maxCapacity else {
            return free(block)
        }
        let slots = self.slots ?? UnsafeMutablePointer<UnsafeMutableRawPointer>.allocate(capacity: maxBuffers)
        self.slots = slots
        slots[count] = block
        count &+= 1
    }
}
