import CHiredis
import Glibc

/// What a Redis connection reads per readable event: one `read(2)` of up to 64 KB (as
/// much as the four 16 KB reads hiredis would make), fed to the hiredis reader. No
/// `FIONREAD` to ask whether more is buffered (one ioctl per read before): the loop's
/// epoll is level-triggered, so what is left wakes it again.
final class RedisInput {
    static let capacity = 64 << 10
    private let buffer = UnsafeMutableRawPointer.allocate(byteCount: RedisInput.capacity, alignment: 16)

    enum Outcome: Equatable { case fed, nothing, closed, failed(Int32) }

    /// Reads `fd` once and feeds what came to `reader`.
    func read(_ fd: Int32, into reader: UnsafeMutablePointer<redisReader>) -> Outcome {
        let count = Glibc.read(fd, buffer, Self.capacity)
        if count > 0 {
            return redisReaderFeed(reader, buffer.assumingMemoryBound(to: CChar.self), count) == REDIS_OK ? .fed : .failed(ENOMEM)
        }
        if count == 0 { return .closed }
        let code = errno
        return code == EAGAIN || code == EWOULDBLOCK || code == EINTR ? .nothing : .failed(code)
    }

    deinit { buffer.deallocate() }
}
