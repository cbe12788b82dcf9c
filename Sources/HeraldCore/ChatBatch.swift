import HeraldLoop
import HeraldProtocol

/// Consecutive chat lines of one room that arrived from the bus in one read, gathered so
/// that each member gets them with one copy instead of one per line. Walking a room's
/// members once per line touched every member's connection and output buffer for every
/// line: most of a worker's user-space time in a busy room.
///
/// A run ends at a line of another room, when the gathered bytes would pass `limit`, and
/// when the bus has handed over everything it read (`RoomBus.start`'s `deliveredAll`):
/// nothing else runs on the loop between the lines of one run, so members see exactly
/// what, and in the order, they saw line by line.
struct ChatBatch {
    /// The most gathered before delivering: what a member's queue may hold past
    /// `maxOutputBytes` is one batch rather than one line.
    static let byteLimit = 16_384

    private(set) var room = ""
    private(set) var bytes: [UInt8] = []
    private(set) var lines = 0

    var isEmpty: Bool { lines == 0 }

    /// Whether `line` of `room` can join the gathered run (false: deliver the run first).
    func accepts(room: String, byteCount: Int, limit: Int) -> Bool {
        isEmpty || (self.room == room && bytes.count + byteCount <= limit)
    }

    mutating func add(room: String, line: UnsafeRawBufferPointer) {
        if isEmpty { self.room = room }
        bytes.appendRaw(line)
        lines += 1
    }

    mutating func removeAll() {
        bytes.removeAll(keepingCapacity: bytes.capacity <= 4 * Self.byteLimit)
        lines = 0
    }
}

extension Worker {
    /// A chat line from another worker: gathered with the lines of the same room read
    /// with it (`ChatBatch`); a line bigger than a batch goes out alone.
    func gather(room: String, line: UnsafeRawBufferPointer) {
        let limit = min(ChatBatch.byteLimit, configuration.maxOutputBytes)
        if !chatBatch.accepts(room: room, byteCount: line.count, limit: limit) { deliverChatBatch() }
        if line.count > limit { return deliver(room: room, bytes: line, except: nil) }
        chatBatch.add(room: room, line: line)
    }

    /// Delivers the gathered lines, if any.
    func deliverChatBatch() {
        guard !chatBatch.isEmpty else { return }
        chatBatch.bytes.withBytes { deliver(room: chatBatch.room, bytes: $0, except: nil, lines: chatBatch.lines) }
        chatBatch.removeAll()
    }
}
