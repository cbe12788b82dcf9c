import Glibc

/// A connection's queue of bytes to send: one malloc'd block holding its capacity and
/// count ahead of the bytes, so the connection stores one pointer (nil: no storage, what
/// an idle connection holds) and every operation is plain pointer work.
///
/// Not an `[UInt8]` because the request path needs what `Array` cannot do cheaply: write
/// a reply in place into the spare capacity (an `append(contentsOf:)` of the finished
/// reply cost ~100 instructions) and empty a buffer that goes back to the pool while
/// keeping its capacity (`removeAll(keepingCapacity:)` ~80, through the generic range
/// replacement). Non-copyable: exactly one owner frees the block.
struct OutputBuffer: ~Copyable {
    /// [capacity: Int][count: Int][capacity bytes], or nil.
    private var storage: UnsafeMutableRawPointer?
    private static let headerBytes = 2 * MemoryLayout<Int>.stride

    /// No storage.
    init() { storage = nil }

    /// An empty buffer with room for `capacity` bytes.
    init(capacity: Int) {
        storage = nil
        grow(toAtLeast: capacity)
    }

    /// Adopts a block made by `takeStorage()`, emptied.
    init(adopting block: UnsafeMutableRawPointer) {
        storage = block
        block.storeBytes(of: 0, toByteOffset: MemoryLayout<Int>.stride, as: Int.self)
    }

    deinit { free(storage) }

    var capacity: Int { storage?.load(as: Int.self) ?? 0 }

    var count: Int {
        @inline(__always) get { storage?.load(fromByteOffset: MemoryLayout<Int>.stride, as: Int.self) ?? 0 }
    }

    var isEmpty: Bool { count == 0 }
    var hasStorage: Bool { storage != nil }

    private var bytes: UnsafeMutablePointer<UInt8> {
        (storage! + Self.headerBytes).assumingMemoryBound(to: UInt8.self)
    }

    @inline(__always)
    private func setCount(_ n: Int) {
        storage!.storeBytes(of: n, toByteOffset: MemoryLayout<Int>.stride, as: Int.self)
    }

    /// Makes room for at least `needed` bytes in all (doubling, so appends stay amortized).
    private mutating func grow(toAtLeast needed: Int) {
        let old = capacity
        let target = max(needed, old * 2, 64)
        guard let block = realloc(storage, Self.headerBytes + target) else {
            fatalError("out of memory growing an output buffer to \(target) bytes")
        }
        if storage == nil { block.storeBytes(of: 0, toByteOffset: MemoryLayout<Int>.stride, as: Int.self) }
        block.storeBytes(of: target, as: Int.self)
        storage = block
    }

    /// Appends `source`.
    mutating func append(_ source: UnsafeRawBufferPointer) {
        guard let from = source.baseAddress, source.count > 0 else { return }
        let n = count
        if capacity - n < source.count { grow(toAtLeast: n + source.count) }
        memcpy(bytes + n, from, source.count)
        setCount(n + source.count)
    }

    mutating func append(_ source: [UInt8]) {
        source.withUnsafeBytes { append($0) }
    }

    /// Lets `write` put up to `room` bytes straight into the spare capacity; it returns
    /// how many it wrote (0: nothing kept). Returns that count.
    @inline(__always)
    mutating func appendInPlace(room: Int, _ write: (UnsafeMutableBufferPointer<UInt8>) -> Int) -> Int {
        let n = count
        if capacity - n < room { grow(toAtLeast: n + room) }
        let written = write(UnsafeMutableBufferPointer(start: bytes + n, count: room))
        setCount(n + written)
        return written
    }

    /// Drops the first `n` bytes (sent), moving the rest to the front.
    mutating func removeFirst(_ n: Int) {
        let total = count
        guard n > 0 else { return }
        precondition(n <= total, "removing more than an output buffer holds")
        if n < total { memmove(bytes, bytes + n, total - n) }
        setCount(total - n)
    }

    /// The bytes from `start` to the end.
    func withBytes<R>(from start: Int, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        guard let storage else { return try body(UnsafeRawBufferPointer(start: nil, count: 0)) }
        let total = count
        precondition(start >= 0 && start <= total, "reading an output buffer past its end")
        return try body(UnsafeRawBufferPointer(start: storage + Self.headerBytes + start, count: total - start))
    }

    /// A copy of the bytes from `start` (a handoff's pending output).
    func copy(from start: Int) -> [UInt8] {
        withBytes(from: start) { Array($0) }
    }

    /// Gives up the block (nil when there is none), leaving the buffer without storage.
    mutating func takeStorage() -> UnsafeMutableRawPointer? {
        let block = storage
        storage = nil
        return block
    }

    /// The block's capacity, for a block taken with `takeStorage()`.
    static func capacity(of block: UnsafeMutableRawPointer) -> Int { block.load(as: Int.self) }
}
