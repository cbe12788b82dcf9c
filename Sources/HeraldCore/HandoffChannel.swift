import Glibc
import HeraldLoop

/// The frames two workers exchange over a handoff channel (a unix socketpair the
/// supervisor made): `[u32 length][version][kind][body]`, integers little-endian.
/// - batch (old → successor): `[u32 batch][u32 count]` then count × `[u32 length][Session]`;
///   the count's descriptors travel with the frame's first byte, in the same order.
/// - ack (successor → old): `[u32 batch][u32 failed count]` then the failed indexes: the
///   successor adopted every other connection of the batch, the old worker gives the
///   failed ones the goodbye and closes its copies of them all.
enum HandoffFrame {
    static let version: UInt8 = 1
    static let batch: UInt8 = 0x42
    static let ack: UInt8 = 0x41
    /// old → successor: `[u32 count]` × `[u32 length][room]`, the rooms of the connections to come.
    static let rooms: UInt8 = 0x52
    /// successor → old: subscribed to those rooms, keeping their messages.
    static let subscribed: UInt8 = 0x53

    static func begin(_ kind: UInt8, into out: inout [UInt8]) {
        out.removeAll(keepingCapacity: true)
        put32(0, &out)
        out.append(version)
        out.append(kind)
    }

    static func end(_ out: inout [UInt8]) {
        let length = UInt32(out.count - 4)
        for i in 0..<4 { out[i] = UInt8(truncatingIfNeeded: length >> UInt32(8 * i)) }
    }

    static func put32(_ value: UInt32, _ out: inout [UInt8]) {
        for i in 0..<4 { out.append(UInt8(truncatingIfNeeded: value >> UInt32(8 * i))) }
    }

    static func get32(_ bytes: ArraySlice<UInt8>, _ offset: Int) -> UInt32? {
        let start = bytes.startIndex + offset
        guard start + 4 <= bytes.endIndex else { return nil }
        var value: UInt32 = 0
        for i in 0..<4 { value |= UInt32(bytes[start + i]) << UInt32(8 * i) }
        return value
    }
}

/// One end of a handoff channel: non-blocking, reads whole frames (with the descriptors
/// that came along) and writes frames, keeping what the socket did not take yet.
@LoopActor
final class HandoffChannel: EventHandler {
    let fd: Int32
    private var input: [UInt8] = []
    private var inputStart = 0
    /// Descriptors received and not yet claimed by a frame, in arrival order.
    private var descriptors: [Int32] = []
    private var output: [UInt8] = []
    private var outputSent = 0
    private(set) var isOpen = true
    private var watchingWritable = false
    /// A complete frame: kind, body, and its descriptors (a batch's).
    var onFrame: (@LoopActor (_ kind: UInt8, _ body: ArraySlice<UInt8>, _ channel: HandoffChannel) -> Void)?
    var onClosed: (@LoopActor (_ reason: String) -> Void)?

    init(fd: Int32) throws(SystemError) {
        self.fd = fd
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        try EventLoop.current.register(fd: fd, events: IOEvents.readable | IOEvents.readHangUp, handler: self)
    }

    /// Takes the next `count` descriptors received (a batch frame claims its own).
    func takeDescriptors(_ count: Int) -> [Int32]? {
        guard descriptors.count >= count else { return nil }
        let taken = Array(descriptors.prefix(count))
        descriptors.removeFirst(count)
        return taken
    }

    var hasPendingOutput: Bool { outputSent < output.count }

    /// Sends a frame with `descriptors`; false when the socket takes nothing now (try again
    /// later). Throws when the channel is broken. Whatever part the socket did not take is
    /// sent when it becomes writable (the descriptors went with the first byte).
    func send(_ frame: [UInt8], descriptors: [Int32]) throws(SystemError) -> Bool {
        guard isOpen, !hasPendingOutput else { return false }
        let sent: Int
        do {
            sent = try DescriptorPassing.send(on: fd, bytes: frame, descriptors: descriptors)
        } catch let error where error.errno == EAGAIN || error.errno == EWOULDBLOCK {
            watchWritable(true)
            return false
        }
        if sent < frame.count {
            output = Array(frame[sent...])
            outputSent = 0
            watchWritable(true)
        }
        return true
    }

    func handleEvents(_ events: UInt32) {
        if events & IOEvents.writable != 0 { flush() }
        guard isOpen else { return }
        if events & (IOEvents.readable | IOEvents.hangUp | IOEvents.error | IOEvents.readHangUp) != 0 { readAvailable() }
    }

    private func flush() {
        while hasPendingOutput {
            let n = output.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + outputSent, output.count - outputSent, Int32(MSG_NOSIGNAL)) }
            if n > 0 { outputSent += n; continue }
            if n < 0 && (errno == EAGAIN || errno == EINTR) { return }
            return close(reason: SystemError("send").description)
        }
        output = []
        outputSent = 0
        watchWritable(false)
        onWritable?()
    }

    /// Called when pending output is written (the sender may send the next batch).
    var onWritable: (@LoopActor () -> Void)?

    private func watchWritable(_ on: Bool) {
        guard on != watchingWritable, isOpen else { return }
        watchingWritable = on
        EventLoop.current.modify(fd: fd, events: IOEvents.readable | IOEvents.readHangUp | (on ? IOEvents.writable : 0))
    }

    /// Reads what is there (a bounded amount per call, so the loop goes on serving) and
    /// hands every complete frame on.
    private func readAvailable() {
        for _ in 0..<16 {
            let received: (bytes: [UInt8], descriptors: [Int32])
            do {
                received = try DescriptorPassing.receive(on: fd)
            } catch let error where error.errno == EAGAIN || error.errno == EWOULDBLOCK {
                break
            } catch {
                return close(reason: error.description)
            }
            descriptors.append(contentsOf: received.descriptors)
            if received.bytes.isEmpty { return close(reason: "the other worker closed the channel") }
            input.append(contentsOf: received.bytes)
            parseFrames()
            guard isOpen else { return }
        }
    }

    private func parseFrames() {
        while isOpen {
            let available = input[inputStart...]
            guard let length = HandoffFrame.get32(available, 0), available.count >= 4 + Int(length) else { break }
            let start = available.startIndex
            guard length >= 2 else { return close(reason: "a malformed handoff frame") }
            let version = input[start + 4]
            guard version == HandoffFrame.version else {
                return close(reason: "handoff version \(version) (this worker speaks \(HandoffFrame.version))")
            }
            let kind = input[start + 5]
            let body = input[(start + 6)..<(start + 4 + Int(length))]
            inputStart = start + 4 + Int(length)
            onFrame?(kind, body, self)
        }
        if inputStart == input.count {
            input.removeAll(keepingCapacity: input.capacity <= 1 << 20)
            inputStart = 0
        } else if inputStart > 1 << 16 {
            input.removeSubrange(0..<inputStart)
            inputStart = 0
        }
    }

    func close(reason: String) {
        guard isOpen else { return }
        isOpen = false
        EventLoop.current.unregister(fd: fd)
        Glibc.close(fd)
        for descriptor in descriptors { Glibc.close(descriptor) }
        descriptors.removeAll()
        onClosed?(reason)
    }
}
