import CHeraldTLS
import COpenSSL
import Glibc
import HeraldCore
import HeraldLoop

/// Makes a `TLSTransport` for each connection a TLS listener accepts.
@LoopActor
public final class TLSTransportFactory: TransportFactory {
    public let context: TLSContext
    /// Milliseconds a client has to complete the handshake.
    public let handshakeTimeout: Int

    public init(context: TLSContext, handshakeTimeout: Int) {
        self.context = context
        self.handshakeTimeout = handshakeTimeout
    }

    public func makeTransport(fd: Int32) throws -> any Transport {
        try TLSTransport(fd: fd, context: context, handshakeTimeout: handshakeTimeout)
    }
}

/// TLS over a non-blocking socket, driven by the worker's loop. The handshake runs
/// implicitly inside the first reads and writes (the server is in accept state);
/// OpenSSL's WANT_READ / WANT_WRITE are reported through `needsWritableToRead` and
/// `writeWaitsForReadable`, so the connection watches the right socket events.
@LoopActor
public final class TLSTransport: Transport {
    public let fd: Int32
    private let ssl: OpaquePointer
    private var handshakeTimer: LoopTimer?
    private(set) var isHandshakeDone = false
    private var readWantsWrite = false
    private var writeWantsRead = false
    /// A fatal TLS error happened or the peer vanished: no close_notify, no more I/O.
    private var isBroken = false
    /// The result every later read and write returns once the connection is finished.
    private var terminal: IOResult?
    /// A read's end (close or error) that came after some data: returned by the next read.
    private var stashed: IOResult?
    private var isClosed = false

    public private(set) var hasBufferedInput = false
    public private(set) var failureReason: String?

    public init(fd: Int32, context: TLSContext, handshakeTimeout: Int) throws(TLSError) {
        guard let ssl = SSL_new(context.context) else {
            throw TLSError("SSL_new failed: \(TLSContext.lastError())")
        }
        guard SSL_set_fd(ssl, fd) == 1 else {
            SSL_free(ssl)
            throw TLSError("SSL_set_fd failed: \(TLSContext.lastError())")
        }
        SSL_set_accept_state(ssl)
        herald_tls_watch_renegotiation(ssl)
        self.fd = fd
        self.ssl = ssl
        if handshakeTimeout > 0 {
            handshakeTimer = EventLoop.current.schedule(afterMilliseconds: handshakeTimeout) { [weak self] in
                self?.handshakeTimedOut(after: handshakeTimeout)
            }
        }
    }

    public var needsWritableToRead: Bool { readWantsWrite }
    public var writeWaitsForReadable: Bool { writeWantsRead }

    /// The negotiated protocol, e.g. "TLSv1.3" (nil before the handshake is done).
    public var protocolVersion: String? {
        guard isHandshakeDone, let name = SSL_get_version(ssl) else { return nil }
        return String(cString: name)
    }

    public func read(into buffer: UnsafeMutableRawBufferPointer) -> IOResult {
        hasBufferedInput = false
        if let stashed {
            self.stashed = nil
            return stashed
        }
        if let terminal { return terminal }
        readWantsWrite = false
        var total = 0
        while total < buffer.count {
            ERR_clear_error()
            let n = SSL_read(ssl, buffer.baseAddress! + total, Int32(clamping: buffer.count - total))
            if herald_tls_renegotiation_refused(ssl) != 0 && terminal == nil {
                // OpenSSL refused it with a no_renegotiation alert; end the connection.
                isBroken = true
                finish(.failed(EPROTO), reason: "tls: the client tried to renegotiate (refused)")
                if total == 0 { return terminal! }
                stashed = terminal
                hasBufferedInput = true
                break
            }
            if n > 0 {
                total += Int(n)
                // Decrypted bytes or whole records OpenSSL already holds are not seen by
                // epoll: take them now while there is room.
                if SSL_has_pending(ssl) == 0 { break }
                continue
            }
            let result = outcome(of: n, reading: true)
            if total > 0 {
                if result != .wouldBlock {
                    stashed = result
                    hasBufferedInput = true
                }
                break
            }
            noteHandshakeProgress()
            return result
        }
        noteHandshakeProgress()
        if total == buffer.count && SSL_has_pending(ssl) != 0 { hasBufferedInput = true }
        return .bytes(total)
    }

    public func write(_ bytes: UnsafeRawBufferPointer) -> IOResult {
        if let terminal { return terminal }
        ERR_clear_error()
        let n = SSL_write(ssl, bytes.baseAddress, Int32(clamping: bytes.count))
        let result: IOResult
        if n > 0 {
            writeWantsRead = false
            result = .bytes(Int(n))
        } else {
            result = outcome(of: n, reading: false)
        }
        noteHandshakeProgress()
        // A handshake finished inside this write may have read the client's first
        // records ahead into OpenSSL's buffer, where epoll cannot see them.
        if terminal == nil && SSL_has_pending(ssl) != 0 { hasBufferedInput = true }
        return result
    }

    /// Sends close_notify (when the session is healthy), then a TCP FIN.
    public func shutdownOutput() {
        if isHandshakeDone && !isBroken && terminal == nil {
            ERR_clear_error()
            _ = SSL_shutdown(ssl)
            ERR_clear_error()
        }
        _ = shutdown(fd, Int32(SHUT_WR))
    }

    public func close() {
        guard !isClosed else { return }
        isClosed = true
        handshakeTimer?.cancel()
        handshakeTimer = nil
        SSL_free(ssl)
        _ = Glibc.close(fd)
    }

    // MARK: Internals

    private func noteHandshakeProgress() {
        guard !isHandshakeDone, SSL_is_init_finished(ssl) != 0 else { return }
        isHandshakeDone = true
        handshakeTimer?.cancel()
        handshakeTimer = nil
        if log.isEnabled(.debug) {
            log.debug("tls.handshake", ["fd": String(fd), "version": protocolVersion ?? "?",
                                        "cipher": SSL_CIPHER_get_name(SSL_get_current_cipher(ssl)).map { String(cString: $0) } ?? "?"])
        }
    }

    /// Maps a failed SSL_read/SSL_write onto an I/O result.
    private func outcome(of returned: Int32, reading: Bool) -> IOResult {
        let savedErrno = errno
        let code = SSL_get_error(ssl, returned)
        switch code {
        case SSL_ERROR_WANT_READ:
            if reading { readWantsWrite = false } else { writeWantsRead = true }
            return .wouldBlock
        case SSL_ERROR_WANT_WRITE:
            if reading { readWantsWrite = true } else { writeWantsRead = false }
            return .wouldBlock
        case SSL_ERROR_ZERO_RETURN:
            // close_notify received: an orderly close.
            return finish(.closed, reason: nil)
        case SSL_ERROR_SYSCALL:
            isBroken = true
            if savedErrno == 0 || savedErrno == ECONNRESET || savedErrno == EPIPE {
                return finish(.closed, reason: eofReason(reset: savedErrno != 0))
            }
            return finish(.failed(savedErrno), reason: "tls: \(String(cString: strerror(savedErrno)))")
        default:  // SSL_ERROR_SSL and anything unexpected
            isBroken = true
            if herald_tls_is_unexpected_eof(herald_tls_peek_error()) != 0 {
                ERR_clear_error()
                return finish(.closed, reason: eofReason(reset: false))
            }
            let text = TLSContext.lastError()
            let phase = isHandshakeDone ? "tls error" : "tls handshake failed"
            return finish(.failed(EPROTO), reason: "\(phase): \(text)")
        }
    }

    private func eofReason(reset: Bool) -> String {
        let how = reset ? "reset the connection" : "closed"
        return isHandshakeDone ? "client \(how) without close_notify" : "client \(how) during the tls handshake"
    }

    @discardableResult
    private func finish(_ result: IOResult, reason: String?) -> IOResult {
        if terminal == nil {
            terminal = result
            failureReason = reason
        }
        readWantsWrite = false
        writeWantsRead = false
        return terminal!
    }

    private func handshakeTimedOut(after milliseconds: Int) {
        handshakeTimer = nil
        guard !isClosed, !isHandshakeDone, terminal == nil else { return }
        isBroken = true
        finish(.closed, reason: "tls handshake timed out after \(milliseconds) ms")
        // Wakes the connection up (the socket reads end-of-file and hangs up); the
        // worker then reads the terminal result and closes it.
        _ = shutdown(fd, Int32(SHUT_RDWR))
    }
}
