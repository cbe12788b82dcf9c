import COpenSSL
import Glibc

/// Bytes read from one socket and not yet consumed. Reads go straight into the free tail;
/// lines (ending in `\n`) are handed out as pointers into the storage, valid until the
/// next `read`. The storage is reused and only grows for a line longer than itself.
final class InBuffer {
    private(set) var base: UnsafeMutablePointer<UInt8>
    private(set) var capacity: Int
    private(set) var start = 0     // first unconsumed byte
    private(set) var end = 0       // one past the last byte read

    init(capacity: Int = 4096) {
        self.capacity = capacity
        base = .allocate(capacity: capacity)
    }

    deinit { base.deallocate() }

    var readable: Int { end - start }
    var isEmpty: Bool { start == end }

    /// Reads once from `fd`. Returns the byte count, 0 at end of stream, -1 for "try
    /// again later" and throws nothing: other errors come back as -2 with errno set.
    func read(from fd: Int32, max: Int = .max) -> Int {
        makeRoom()
        let n = Glibc.read(fd, base + end, Swift.min(capacity - end, max))
        if n > 0 { end += n; return n }
        if n == 0 { return 0 }
        return (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? -1 : -2
    }

    /// Reads once through TLS, then whatever OpenSSL already holds (epoll does not see
    /// it). Same results as `read(from:)`.
    func read(tls ssl: OpaquePointer) -> Int {
        var total = 0
        repeat {
            makeRoom()
            ERR_clear_error()
            let n = SSL_read(ssl, base + end, Int32(clamping: capacity - end))
            if n > 0 { end += Int(n); total += Int(n); continue }
            if total > 0 { return total }
            switch SSL_get_error(ssl, n) {
            case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE: return -1
            case SSL_ERROR_ZERO_RETURN: return 0
            default: errno = EPROTO; return -2
            }
        } while SSL_has_pending(ssl) != 0
        return total
    }

    /// The next complete line without its `\n` (a `\r` before it is kept), or nil.
    @inline(__always)
    func nextLine() -> UnsafeBufferPointer<UInt8>? {
        guard start < end, let nl = memchr(base + start, 0x0A, end - start) else { return nil }
        let lineEnd = nl.assumingMemoryBound(to: UInt8.self) - base
        let line = UnsafeBufferPointer(start: base + start, count: lineEnd - start)
        start = lineEnd + 1
        return line
    }

    /// The unconsumed bytes, for parsers that are not line based (RESP).
    var unconsumed: UnsafeBufferPointer<UInt8> { UnsafeBufferPointer(start: base + start, count: end - start) }

    func consume(_ count: Int) {
        precondition(count <= end - start)
        start += count
        if start == end { start = 0; end = 0 }
    }

    /// Ensures free space at the tail: drops consumed bytes, grows when a single
    /// unfinished value fills the whole storage.
    private func makeRoom() {
        if start == end { start = 0; end = 0 }
        if end < capacity { return }
        if start > 0 {
            memmove(base, base + start, end - start)
            end -= start
            start = 0
            return
        }
        let bigger = UnsafeMutablePointer<UInt8>.allocate(capacity: capacity * 2)
        bigger.update(from: base, count: end)
        base.deallocate()
        base = bigger
        capacity *= 2
    }
}

/// Bytes queued for one socket that the kernel has not taken yet.
final class OutBuffer {
    private var base: UnsafeMutablePointer<UInt8>
    private var capacity: Int
    private var start = 0
    private var end = 0

    init(capacity: Int = 4096) {
        self.capacity = capacity
        base = .allocate(capacity: capacity)
    }

    deinit { base.deallocate() }

    var pending: Int { end - start }

    func append(_ bytes: UnsafeRawBufferPointer) {
        reserve(bytes.count)
        if let src = bytes.baseAddress { memcpy(base + end, src, bytes.count) }
        end += bytes.count
    }

    func append(_ bytes: [UInt8]) { bytes.withUnsafeBytes { append($0) } }

    @discardableResult
    /// Writable space of at least `count` bytes at the tail; call `commit` after filling.
    func reserve(_ count: Int) -> UnsafeMutablePointer<UInt8> {
        if start == end { start = 0; end = 0 }
        if capacity - end < count {
            if start > 0 { memmove(base, base + start, end - start); end -= start; start = 0 }
            if capacity - end < count {
                var size = capacity
                while size - end < count { size *= 2 }
                let bigger = UnsafeMutablePointer<UInt8>.allocate(capacity: size)
                bigger.update(from: base, count: end)
                base.deallocate()
                base = bigger
                capacity = size
            }
        }
        return base + end
    }

    func commit(_ count: Int) { end += count }

    func withPending<R>(_ body: (UnsafeMutablePointer<UInt8>, Int) -> R) -> R { body(base + start, end - start) }

    func consume(_ count: Int) {
        start += count
        if start == end { start = 0; end = 0 }
    }

    /// Writes as much as the socket takes. Returns false on a hard error (errno set).
    func flush(to fd: Int32) -> Bool {
        while start < end {
            let n = send(fd, base + start, end - start, Int32(MSG_NOSIGNAL))
            if n > 0 { start += n; continue }
            if n < 0 && errno == EINTR { continue }
            if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { return true }
            return false
        }
        start = 0
        end = 0
        return true
    }
}

extension OutBuffer {
    /// Writes as much as TLS takes (partial writes on). Returns false on a hard error.
    func flush(tls ssl: OpaquePointer) -> Bool {
        while pending > 0 {
            ERR_clear_error()
            let n = withPending { SSL_write(ssl, $0, Int32(clamping: $1)) }
            if n > 0 { consume(Int(n)); continue }
            switch SSL_get_error(ssl, n) {
            case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE: return true
            default: errno = EPROTO; return false
            }
        }
        return true
    }
}

extension UnsafeBufferPointer where Element == UInt8 {
    /// Whether `pattern` occurs anywhere in these bytes.
    @inline(__always)
    func contains(_ pattern: StaticString) -> Bool { find(pattern) != nil }

    /// The offset just past the first occurrence of `pattern`, or nil.
    func find(_ pattern: StaticString) -> Int? {
        let plen = pattern.utf8CodeUnitCount
        guard plen > 0, let base = baseAddress, count >= plen else { return nil }
        let p = pattern.utf8Start
        let first = Int32(p.pointee)
        var i = 0
        while i <= count - plen {
            guard let hit = memchr(base + i, first, count - plen - i + 1) else { return nil }
            let at = UnsafePointer<UInt8>(hit.assumingMemoryBound(to: UInt8.self)) - base
            if memcmp(base + at, p, plen) == 0 { return at + plen }
            i = at + 1
        }
        return nil
    }

    func hasPrefix(_ pattern: StaticString) -> Bool {
        let plen = pattern.utf8CodeUnitCount
        guard let base = baseAddress, count >= plen else { return false }
        return memcmp(base, pattern.utf8Start, plen) == 0
    }
}
