import CHeraldSystem
import Glibc

/// Sending open descriptors to another process over a unix socket (SCM_RIGHTS), with a
/// few bytes of message alongside: the connection handoff and the binary upgrade use it.
/// The descriptors travel with the message's first byte; the receiver gets its own copies
/// (close-on-exec), and the sender still owns (and must close) its originals.
public enum DescriptorPassing {
    /// The kernel's limit of descriptors in one message (SCM_MAX_FD).
    public static let maximumPerMessage = Int(HERALD_MAX_PASSED_FDS)

    /// Sends `bytes` (not empty) with `descriptors` attached. Returns how many bytes went
    /// (fewer than all on a non-blocking socket whose buffer is nearly full: the
    /// descriptors went with the first, the caller sends the rest plainly).
    public static func send(on socket: Int32, bytes: [UInt8], descriptors: [Int32]) throws(SystemError) -> Int {
        precondition(!bytes.isEmpty, "SCM_RIGHTS needs at least one byte of message")
        guard descriptors.count <= maximumPerMessage else {
            throw SystemError("sendmsg: \(descriptors.count) descriptors (at most \(maximumPerMessage))", errno: EINVAL)
        }
        while true {
            let sent = bytes.withUnsafeBytes { buffer in
                descriptors.withUnsafeBufferPointer { fds in
                    herald_send_with_fds(socket, buffer.baseAddress, buffer.count, fds.baseAddress, Int32(fds.count))
                }
            }
            if sent >= 0 { return sent }
            if errno == EINTR { continue }
            throw SystemError("sendmsg")
        }
    }

    /// One receive: the bytes read (empty at end of stream) and the descriptors that came
    /// with them. Throws EAGAIN on a non-blocking socket with nothing to read, and EMSGSIZE
    /// when more than `maximumDescriptors` arrived (those are closed, none is returned).
    public static func receive(on socket: Int32, capacity: Int = 65_536,
                               maximumDescriptors: Int = maximumPerMessage) throws(SystemError) -> (bytes: [UInt8], descriptors: [Int32]) {
        var bytes = [UInt8](repeating: 0, count: capacity)
        var fds = [Int32](repeating: -1, count: max(1, min(maximumDescriptors, maximumPerMessage)))
        var count: Int32 = 0
        while true {
            let limit = Int32(min(maximumDescriptors, maximumPerMessage))
            let received = bytes.withUnsafeMutableBytes { buffer in
                fds.withUnsafeMutableBufferPointer { out in
                    herald_receive_with_fds(socket, buffer.baseAddress, buffer.count, out.baseAddress, limit, &count)
                }
            }
            if received >= 0 {
                bytes.removeSubrange(received...)
                return (bytes, Array(fds.prefix(Int(count))))
            }
            if errno == EINTR { continue }
            throw SystemError("recvmsg")
        }
    }
}
