import Glibc

/// A failure of the byte stream under a client.
public struct HeraldTransportError: Error, Sendable, CustomStringConvertible {
    public let description: String
    /// Set when the failure is the TLS handshake's (the client throws it as `.tls`).
    public let tls: HeraldTLSError?

    public init(_ description: String, tls: HeraldTLSError? = nil) {
        self.description = description
        self.tls = tls
    }

    /// `what: strerror(errno)`.
    public static func system(_ what: String, _ code: Int32 = errno) -> HeraldTransportError {
        HeraldTransportError("\(what): \(String(cString: strerror(code))) (errno \(code))")
    }
}

/// The byte stream a client talks over: TCP (`TCPTransport`) or TLS (`TLSTransport`).
///
/// Threads: the client's reader thread calls `read`; writes are serialized by the
/// client but come from any thread, concurrently with `read`; `shutdown` may be
/// called from any thread at any time and must wake a blocked `read` or `write`.
/// `close` is called exactly once, after the last `read` returned and with no `write`
/// in progress.
public protocol HeraldTransport: AnyObject, Sendable {
    /// Blocks until some bytes arrive; returns their count, 0 at end of stream.
    func read(into buffer: UnsafeMutableRawBufferPointer) throws(HeraldTransportError) -> Int
    /// Writes all of `bytes` (blocking).
    func write(_ bytes: UnsafeRawBufferPointer) throws(HeraldTransportError)
    /// Ends the stream both ways; wakes blocked calls.
    func shutdown()
    /// Releases the stream.
    func close()
}

/// Opens a transport: the client's transport seam.
public struct HeraldConnector: Sendable {
    public let name: String
    /// Connects to `host:port` within `timeout` (blocking; called on the client's reader thread).
    public let open: @Sendable (_ host: String, _ port: Int, _ timeout: Duration) throws(HeraldTransportError) -> any HeraldTransport

    public init(name: String,
                open: @escaping @Sendable (_ host: String, _ port: Int, _ timeout: Duration) throws(HeraldTransportError) -> any HeraldTransport) {
        self.name = name
        self.open = open
    }

    /// Plain TCP. (`.tls(…)`, in TLS.swift, is TLS.)
    public static let tcp = HeraldConnector(name: "tcp") { host, port, timeout throws(HeraldTransportError) in
        try TCPTransport.connect(host: host, port: port, timeout: timeout)
    }
}

/// A blocking TCP socket.
///
/// `shutdown` and `close` may come from any thread, also at once and while a `read` or
/// `write` blocks: the descriptor's state is kept under a lock (as `TLSTransport` does
/// for its session), `shutdown` never touches a closed descriptor, and the descriptor
/// is closed exactly once, only when no `read` or `write` is using it — so its number
/// cannot be reused by another open while a call still holds it.
public final class TCPTransport: HeraldTransport {
    /// The socket; owned by this object, closed by `close()`.
    public let fd: Int32

    private struct State {
        var shutDown = false
        /// `close` was called: no new call may start.
        var closed = false
        /// The descriptor has been closed.
        var released = false
        /// `read`s and `write`s using the descriptor now.
        var users = 0
    }
    private let state = Locked(State())

    init(fd: Int32) { self.fd = fd }

    deinit { close() }

    /// Resolves `host` and connects to the first address that accepts within `timeout`.
    public static func connect(host: String, port: Int, timeout: Duration) throws(HeraldTransportError) -> TCPTransport {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, String(port), &hints, &list)
        guard rc == 0, let first = list else {
            throw HeraldTransportError("cannot resolve \(host): \(String(cString: gai_strerror(rc)))")
        }
        defer { freeaddrinfo(first) }
        var failure = HeraldTransportError("no address for \(host)")
        var cursor: UnsafeMutablePointer<addrinfo>? = first
        while let info = cursor {
            cursor = info.pointee.ai_next
            do {
                return try connect(info.pointee, timeout: timeout, label: "\(host):\(port)")
            } catch {
                failure = error
            }
        }
        throw failure
    }

    private static func connect(_ info: addrinfo, timeout: Duration, label: String) throws(HeraldTransportError) -> TCPTransport {
        let fd = socket(info.ai_family, info.ai_socktype | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue),
                        info.ai_protocol)
        guard fd >= 0 else { throw .system("socket") }
        var ok = false
        defer { if !ok { _ = Glibc.close(fd) } }
        if Glibc.connect(fd, info.ai_addr, info.ai_addrlen) != 0 {
            guard errno == EINPROGRESS else { throw .system("connect to \(label)") }
            var pfd = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            let ms = Int32(clamping: timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000)
            var n: Int32
            repeat { n = poll(&pfd, 1, ms) } while n < 0 && errno == EINTR
            if n == 0 { throw HeraldTransportError("connect to \(label): timed out after \(timeout)") }
            if n < 0 { throw .system("poll") }
            var soError: Int32 = 0
            var len = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &soError, &len)
            if soError != 0 { throw .system("connect to \(label)", soError) }
        }
        let flags = fcntl(fd, F_GETFL)
        _ = fcntl(fd, F_SETFL, flags & ~O_NONBLOCK)
        var one: Int32 = 1
        _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        ok = true
        return TCPTransport(fd: fd)
    }

    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(HeraldTransportError) -> Int {
        try enter("read")
        defer { leave() }
        while true {
            let n = recv(fd, buffer.baseAddress, buffer.count, 0)
            if n >= 0 { return n }
            if errno == EINTR { continue }
            throw .system("read")
        }
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws(HeraldTransportError) {
        try enter("write")
        defer { leave() }
        var offset = 0
        while offset < bytes.count {
            let n = send(fd, bytes.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL))
            if n < 0 {
                if errno == EINTR { continue }
                throw .system("write")
            }
            offset += n
        }
    }

    public func shutdown() {
        state.withLock { s in
            guard !s.released, !s.shutDown else { return }
            s.shutDown = true
            _ = Glibc.shutdown(fd, Int32(SHUT_RDWR))
        }
    }

    /// Closes the socket, at once or (while a `read` or `write` still blocks on it,
    /// which the shutdown here wakes) when the last of them returns.
    public func close() {
        state.withLock { s in
            guard !s.closed else { return }
            s.closed = true
            if !s.shutDown && s.users > 0 {
                s.shutDown = true
                _ = Glibc.shutdown(fd, Int32(SHUT_RDWR))
            }
            if s.users == 0 {
                s.released = true
                _ = Glibc.close(fd)
            }
        }
    }

    private func enter(_ what: String) throws(HeraldTransportError) {
        let open = state.withLock { s -> Bool in
            guard !s.closed else { return false }
            s.users += 1
            return true
        }
        if !open { throw HeraldTransportError("\(what): the connection is closed") }
    }

    private func leave() {
        state.withLock { s in
            s.users -= 1
            if s.closed && s.users == 0 && !s.released {
                s.released = true
                _ = Glibc.close(fd)
            }
        }
    }
}

/// Runs `body` on a new detached thread.
func startThread(_ body: @escaping @Sendable () -> Void) {
    final class Box: Sendable {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }
    let box = Unmanaged.passRetained(Box(body)).toOpaque()
    var thread = pthread_t()
    let rc = pthread_create(&thread, nil, { argument in
        let box = Unmanaged<Box>.fromOpaque(argument!).takeRetainedValue()
        box.body()
        return nil
    }, box)
    precondition(rc == 0, "pthread_create failed: \(rc)")
    pthread_detach(thread)
}
