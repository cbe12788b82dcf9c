import HeraldLoop
import HeraldProtocol

/// The framing of a bus message (the payload of a room channel's PUBLISH):
///
///     [1: format version = 2][1: origin length n, 1…255][n: origin worker id]
///     [8: sequence, little-endian][the chat line]
///
/// Origin and sequence are the message's identity: each worker numbers what it publishes
/// (1, 2, …), so a successor adopting a connection in a handoff can deliver exactly the
/// messages that follow the last one the old worker delivered (Worker+ChatHandoff.swift).
/// Version 1 had no sequence; the two do not read each other's messages.
///
/// The origin's length travels with the message, so any two worker ids work (a host
/// named `web1` and one named `web10`, pids of different digit counts), and a worker
/// recognises its own echo by comparing the origin with its id exactly.
public enum BusFrame {
    public static let version: UInt8 = 2
    /// The longest origin id a frame can carry (server ids are about 80 bytes at most:
    /// a host name of up to 64, the pid and 8 hex digits).
    public static let maxOriginBytes = 255

    /// The bytes that start every message from `origin`: version, length, id.
    public static func header(origin: [UInt8]) -> [UInt8] {
        precondition(!origin.isEmpty && origin.count <= maxOriginBytes,
                     "a bus origin id is 1 to \(maxOriginBytes) bytes, not \(origin.count)")
        return [version, UInt8(origin.count)] + origin
    }

    /// Writes a whole message to `message` (replacing its contents, keeping its capacity).
    public static func encode(header: [UInt8], sequence: UInt64, line: UnsafeRawBufferPointer, into message: inout [UInt8]) {
        message.removeAll(keepingCapacity: true)
        message.reserveCapacity(header.count + 8 + line.count)
        message.append(contentsOf: header)
        for shift in stride(from: 0, to: 64, by: 8) { message.append(UInt8(truncatingIfNeeded: sequence >> UInt64(shift))) }
        message.appendRaw(line)
    }

    /// Splits a message into its origin and its line (views into `message`, no copies);
    /// nil for anything that is not a version-2 frame with a non-empty line.
    @inline(__always)
    public static func parse(_ message: UnsafeRawBufferPointer)
        -> (origin: UnsafeRawBufferPointer, sequence: UInt64, line: UnsafeRawBufferPointer)? {
        guard message.count > 2, message[0] == version else { return nil }
        let length = Int(message[1])
        guard length > 0, message.count > 2 + length + 8 else { return nil }
        var sequence: UInt64 = 0
        for i in 0..<8 { sequence |= UInt64(message[2 + length + i]) << UInt64(8 * i) }
        return (UnsafeRawBufferPointer(rebasing: message[2..<(2 + length)]), sequence,
                UnsafeRawBufferPointer(rebasing: message[(2 + length + 8)...]))
    }

    /// The line of a marker: not chat, only a position in a room's stream (a handoff's).
    public static let markerLine: [UInt8] = [0]

    /// Whether `message` is a frame whose origin is exactly `origin` (memcmp).
    @inline(__always)
    public static func isFrom(_ origin: UnsafeRawBufferPointer, _ message: UnsafeRawBufferPointer) -> Bool {
        guard let parts = parse(message) else { return false }
        return parts.origin.hasSameBytes(as: origin)
    }
}
