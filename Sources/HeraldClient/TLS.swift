import CHeraldTLS
import COpenSSL
import Glibc

/// How a TLS connection checks the server, and what it offers.
///
/// The default verifies the server's certificate against the system's trust store and
/// checks that it is for the host connected to (or `serverName`), with TLS 1.2 or 1.3.
///
/// ```swift
/// let options = HeraldClientOptions(connector: .tls(.caFile("certs/server-cert.pem")))
/// let client = try await HeraldClient.connect(host: "localhost", port: 5001, options: options)
/// ```
public struct TLSClientOptions: Sendable, Equatable {
    /// Whom to trust.
    public enum Trust: Sendable, Equatable {
        /// The system's trust store (OpenSSL's default locations; `/etc/ssl/certs` on Debian).
        case system
        /// Only the CA certificates in this PEM file: a private CA, or a self-signed
        /// server certificate itself.
        case caFile(String)
        /// No verification at all: any certificate, for any name. For development only:
        /// it gives no protection against anyone in the middle.
        case insecureNoVerification
    }

    public var trust: Trust
    /// The name sent as SNI and checked against the certificate; nil: the host
    /// connected to. An IP address is checked against the certificate's IP entries
    /// (and not sent as SNI).
    public var serverName: String?
    /// The oldest protocol version accepted (never older than TLS 1.2).
    public var minimumVersion: TLSVersion
    /// A client certificate (PEM, may hold its chain) and its unencrypted PEM key, for a
    /// server that requires them (`caFile` on the server); nil: none.
    public var certificateFile: String?
    public var keyFile: String?

    public init(trust: Trust = .system, serverName: String? = nil, minimumVersion: TLSVersion = .tls12,
                certificateFile: String? = nil, keyFile: String? = nil) {
        self.trust = trust
        self.serverName = serverName
        self.minimumVersion = minimumVersion
        self.certificateFile = certificateFile
        self.keyFile = keyFile
    }

    /// Trusts only the CA certificates in `path`.
    public static func caFile(_ path: String) -> TLSClientOptions { TLSClientOptions(trust: .caFile(path)) }

    /// No certificate verification (development only).
    public static let insecure = TLSClientOptions(trust: .insecureNoVerification)

    var verifies: Bool { trust != .insecureNoVerification }
}

public enum TLSVersion: Sendable, Equatable {
    case tls12
    case tls13
}

/// Why a TLS connection could not be made. Thrown by `HeraldClient.connect` as
/// `HeraldClientError.tls`.
public enum HeraldTLSError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The options cannot be used: an unreadable CA file, a client certificate or key
    /// that is missing, unreadable or does not match.
    case configuration(String)
    /// The server's certificate was not accepted: not signed by a trusted CA,
    /// self-signed, expired, or not for `serverName`. `reason` is OpenSSL's verdict
    /// ("self-signed certificate", "hostname mismatch", …).
    case certificateRejected(serverName: String, reason: String)
    /// The handshake failed otherwise: not a TLS port, no common version or cipher,
    /// the server refused this client's certificate, the connection closed during it.
    case handshakeFailed(String)
    /// The handshake did not finish within the connect timeout (counted from the start
    /// of the TCP connect; a TCP connect that times out is `.connectFailed`).
    case timedOut(after: Duration)

    public var description: String {
        switch self {
        case .configuration(let why): return "TLS configuration: \(why)"
        case .certificateRejected(let name, let reason): return "the server's TLS certificate for \(name) was rejected: \(reason)"
        case .handshakeFailed(let why): return "TLS handshake failed: \(why)"
        case .timedOut(let after): return "TLS handshake timed out after \(after)"
        }
    }
}

extension HeraldConnector {
    /// TLS over TCP, through OpenSSL 3. See `TLSClientOptions`: the default verifies the
    /// server against the system trust store.
    public static func tls(_ options: TLSClientOptions = TLSClientOptions()) -> HeraldConnector {
        HeraldConnector(name: "tls") { host, port, timeout throws(HeraldTransportError) in
            try TLSTransport.connect(host: host, port: port, timeout: timeout, options: options)
        }
    }
}

/// A TLS session over a TCP socket, blocking to its callers.
///
/// An OpenSSL session may not be used by two threads at once, yet the client reads on
/// its reader thread while writers write. So the socket is non-blocking, every OpenSSL
/// call on the session is made under `state`'s lock (and never waits there), and a call
/// that cannot go on waits in `poll` outside the lock: a write can go out while the
/// reader waits for bytes. `shutdown` sends close_notify and shuts the socket down,
/// which wakes both. Bytes go through `send(MSG_NOSIGNAL)` (a BIO of our own), so a
/// closed peer never raises SIGPIPE in the user's process.
///
/// `@unchecked Sendable`: `ssl` is only touched under `state`'s lock.
public final class TLSTransport: HeraldTransport, @unchecked Sendable {
    private struct State {
        var shutDown = false
        /// A fatal error happened: no close_notify may be sent.
        var failed = false
        /// Application data has arrived (an error before it is the server refusing the session).
        var receivedData = false
        var closed = false
    }

    private let tcp: TCPTransport
    private let ssl: OpaquePointer
    private let state = Locked(State())

    private init(tcp: TCPTransport, ssl: OpaquePointer) {
        self.tcp = tcp
        self.ssl = ssl
    }

    deinit { close() }

    /// Connects to `host:port` and completes the handshake, both within `timeout`.
    public static func connect(host: String, port: Int, timeout: Duration,
                               options: TLSClientOptions) throws(HeraldTransportError) -> TLSTransport {
        let start = ContinuousClock.now
        let context = try makeContext(options)
        defer { SSL_CTX_free(context) }  // the session keeps its own reference
        let tcp = try TCPTransport.connect(host: host, port: port, timeout: timeout)
        guard let ssl = SSL_new(context) else {
            tcp.close()
            throw HeraldTransportError(tls: .configuration("SSL_new: \(openSSLErrorText())"))
        }
        let transport = TLSTransport(tcp: tcp, ssl: ssl)  // closes both if it fails below
        try transport.handshake(serverName: options.serverName ?? host, verify: options.verifies,
                                deadline: start + timeout, timeout: timeout)
        return transport
    }

    private static func makeContext(_ options: TLSClientOptions) throws(HeraldTransportError) -> OpaquePointer {
        guard let context = SSL_CTX_new(TLS_client_method()) else {
            throw HeraldTransportError(tls: .configuration("SSL_CTX_new: \(openSSLErrorText())"))
        }
        var ok = false
        defer { if !ok { SSL_CTX_free(context) } }
        herald_tls_configure_client(context)
        let minimum = options.minimumVersion == .tls13 ? HERALD_TLS1_3_VERSION : HERALD_TLS1_2_VERSION
        guard herald_tls_set_min_version(context, minimum) == 1 else {
            throw HeraldTransportError(tls: .configuration("cannot set the minimum TLS version: \(openSSLErrorText())"))
        }
        switch options.trust {
        case .system:
            guard SSL_CTX_set_default_verify_paths(context) == 1 else {
                throw HeraldTransportError(tls: .configuration("cannot load the system trust store: \(openSSLErrorText())"))
            }
            SSL_CTX_set_verify(context, SSL_VERIFY_PEER, nil)
        case .caFile(let path):
            guard SSL_CTX_load_verify_locations(context, path, nil) == 1 else {
                throw HeraldTransportError(tls: .configuration("cannot load CA certificates from \(path): \(openSSLErrorText())"))
            }
            SSL_CTX_set_verify(context, SSL_VERIFY_PEER, nil)
        case .insecureNoVerification:
            SSL_CTX_set_verify(context, SSL_VERIFY_NONE, nil)
        }
        switch (options.certificateFile, options.keyFile) {
        case (nil, nil):
            break
        case (let certificate?, let key?):
            guard SSL_CTX_use_certificate_chain_file(context, certificate) == 1 else {
                throw HeraldTransportError(tls: .configuration("cannot load the client certificate \(certificate): \(openSSLErrorText())"))
            }
            guard SSL_CTX_use_PrivateKey_file(context, key, SSL_FILETYPE_PEM) == 1 else {
                throw HeraldTransportError(tls: .configuration("cannot load the client key \(key): \(openSSLErrorText())"))
            }
            guard SSL_CTX_check_private_key(context) == 1 else {
                throw HeraldTransportError(tls: .configuration("the client key \(key) does not match the certificate \(certificate)"))
            }
        default:
            throw HeraldTransportError(tls: .configuration("a client certificate needs both certificateFile and keyFile"))
        }
        ok = true
        return context
    }

    private func handshake(serverName: String, verify: Bool, deadline: ContinuousClock.Instant,
                           timeout: Duration) throws(HeraldTransportError) {
        var flags = fcntl(tcp.fd, F_GETFL)
        flags |= O_NONBLOCK
        guard fcntl(tcp.fd, F_SETFL, flags) == 0, let method = socketBIOMethod, let bio = BIO_new(method) else {
            throw HeraldTransportError(tls: .configuration("cannot set up the socket BIO: \(openSSLErrorText())"))
        }
        BIO_set_data(bio, Unmanaged.passUnretained(tcp).toOpaque())  // `tcp` outlives the session
        BIO_set_init(bio, 1)
        SSL_set_bio(ssl, bio, bio)  // the session owns it now
        let isAddress = Self.isIPAddress(serverName)
        if !isAddress {
            guard herald_tls_set_host_name(ssl, serverName) == 1 else {
                throw HeraldTransportError(tls: .configuration("cannot use \(serverName) as the TLS server name"))
            }
        }
        if verify {
            let set = isAddress ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), serverName) : SSL_set1_host(ssl, serverName)
            guard set == 1 else {
                throw HeraldTransportError(tls: .configuration("cannot verify against the name \(serverName)"))
            }
        }
        SSL_set_connect_state(ssl)
        while true {
            let outcome = state.withLock { s -> (rc: Int32, code: Int32, error: Int32, text: String, verifyResult: Int) in
                ERR_clear_error()
                let rc = SSL_do_handshake(ssl)
                let error = errno
                if rc == 1 { return (rc, SSL_ERROR_NONE, 0, "", 0) }
                let code = SSL_get_error(ssl, rc)
                if code != SSL_ERROR_WANT_READ && code != SSL_ERROR_WANT_WRITE { s.failed = true }
                return (rc, code, error, openSSLErrorText(), SSL_get_verify_result(ssl))
            }
            switch outcome.code {
            case SSL_ERROR_NONE:
                return
            case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE:
                let left = deadline - ContinuousClock.now
                guard left > .zero else { throw HeraldTransportError(tls: .timedOut(after: timeout)) }
                let ms = Int32(clamping: left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000 + 1)
                if !wait(Int16(outcome.code == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT), milliseconds: ms) && deadline <= .now {
                    throw HeraldTransportError(tls: .timedOut(after: timeout))
                }
            default:
                if verify && outcome.verifyResult != X509_V_OK {
                    let reason = String(cString: X509_verify_cert_error_string(outcome.verifyResult))
                    throw HeraldTransportError(tls: .certificateRejected(serverName: serverName, reason: reason))
                }
                var why = outcome.text
                if why.isEmpty {
                    why = outcome.error == 0 ? "the server closed the connection" : String(cString: strerror(outcome.error))
                }
                if why.contains("wrong version number") || why.contains("packet length too long") {
                    why += " (is it a TLS port?)"
                }
                throw HeraldTransportError(tls: .handshakeFailed(why))
            }
        }
    }

    // MARK: - HeraldTransport

    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(HeraldTransportError) -> Int {
        while true {
            switch step("read", { ssl, count in SSL_read_ex(ssl, buffer.baseAddress, buffer.count, &count) }) {
            case .done(let n): return n
            case .wait(let events): wait(events)
            case .end: return 0
            case .failed(let error): throw error
            }
        }
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws(HeraldTransportError) {
        var offset = 0
        while offset < bytes.count {
            switch step("write", { ssl, count in SSL_write_ex(ssl, bytes.baseAddress! + offset, bytes.count - offset, &count) }) {
            case .done(let n): offset += n
            // Only a renegotiation makes a write read; the reader may take those bytes, so poll briefly.
            case .wait(let events): wait(events, milliseconds: events == Int16(POLLIN) ? 100 : -1)
            case .end: throw HeraldTransportError("write: the server closed the TLS session")
            case .failed(let error): throw error
            }
        }
    }

    /// Sends close_notify (if the session is sound) and shuts the socket down both ways.
    public func shutdown() {
        state.withLock { s in
            guard !s.closed, !s.shutDown else { return }
            s.shutDown = true
            if !s.failed && SSL_is_init_finished(ssl) == 1 {
                ERR_clear_error()
                _ = SSL_shutdown(ssl)  // one non-blocking attempt; the answer is not awaited
                ERR_clear_error()
            }
            tcp.shutdown()
        }
    }

    public func close() {
        state.withLock { s in
            guard !s.closed else { return }
            s.closed = true
            SSL_free(ssl)
            tcp.close()
        }
    }

    // MARK: - Internals

    private enum Step {
        case done(Int)
        case wait(Int16)
        case end
        case failed(HeraldTransportError)
    }

    /// One OpenSSL call on the session, under the lock.
    private func step(_ what: String, _ call: (OpaquePointer, inout Int) -> Int32) -> Step {
        state.withLock { s -> Step in
            if s.closed { return .failed(HeraldTransportError("\(what): the connection is closed")) }
            if s.failed { return s.shutDown ? .end : .failed(HeraldTransportError("\(what): the TLS session has failed")) }
            ERR_clear_error()
            var count = 0
            let rc = call(ssl, &count)
            let error = errno
            if rc == 1 {
                if what == "read" { s.receivedData = true }
                return .done(count)
            }
            let code = SSL_get_error(ssl, rc)
            switch code {
            case SSL_ERROR_WANT_READ:
                return .wait(Int16(POLLIN))
            case SSL_ERROR_WANT_WRITE:
                return .wait(Int16(POLLOUT))
            case SSL_ERROR_ZERO_RETURN:
                return .end  // close_notify
            default:
                s.failed = true
                if s.shutDown { return .end }  // our own shutdown woke the call
                let unexpectedEOF = herald_tls_is_unexpected_eof(herald_tls_peek_error()) != 0
                let text = openSSLErrorText()
                if unexpectedEOF || (code == SSL_ERROR_SYSCALL && error == 0 && text.isEmpty) {
                    return .failed(HeraldTransportError("\(what): the server closed the connection without a TLS close_notify"))
                }
                if code == SSL_ERROR_SYSCALL && error != 0 { return .failed(.system(what, error)) }
                let why = text.isEmpty ? "SSL error \(code)" : text
                if code == SSL_ERROR_SSL && !s.receivedData {
                    // TLS 1.3: the server checks this client's certificate after the
                    // client's side of the handshake is done; its refusal comes here.
                    return .failed(HeraldTransportError("\(what): TLS error: \(why)", tls: .handshakeFailed("the server refused the session: \(why)")))
                }
                return .failed(HeraldTransportError("\(what): TLS error: \(why)"))
            }
        }
    }

    /// Waits for the socket (outside the lock); false when the time ran out.
    @discardableResult
    private func wait(_ events: Int16, milliseconds: Int32 = -1) -> Bool {
        var pfd = pollfd(fd: tcp.fd, events: events, revents: 0)
        var n: Int32
        repeat { n = poll(&pfd, 1, milliseconds) } while n < 0 && errno == EINTR
        return n != 0
    }

    static func isIPAddress(_ name: String) -> Bool {
        var v4 = in_addr()
        var v6 = in6_addr()
        return inet_pton(AF_INET, name, &v4) == 1 || inet_pton(AF_INET6, name, &v6) == 1
    }
}

extension HeraldTransportError {
    init(tls: HeraldTLSError) {
        self.init(tls.description, tls: tls)
    }
}

/// The oldest queued OpenSSL error of this thread (the queue is cleared), or "".
func openSSLErrorText() -> String {
    var text = [CChar](repeating: 0, count: 256)
    herald_tls_last_error(&text, text.count)
    return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// A socket BIO that sends with MSG_NOSIGNAL: OpenSSL's own writes with `write(2)`,
/// which raises SIGPIPE on a closed connection. Its data is the (unretained)
/// `TCPTransport` whose socket it uses. Created once; never freed.
nonisolated(unsafe) private let socketBIOMethod: OpaquePointer? = {
    guard let method = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "herald client socket") else { return nil }
    func socket(_ bio: OpaquePointer) -> Int32 {
        Unmanaged<TCPTransport>.fromOpaque(BIO_get_data(bio)).takeUnretainedValue().fd
    }
    _ = BIO_meth_set_write_ex(method) { bio, data, count, written in
        guard let bio else { return 0 }
        BIO_clear_flags(bio, BIO_FLAGS_READ | BIO_FLAGS_WRITE | BIO_FLAGS_IO_SPECIAL | BIO_FLAGS_SHOULD_RETRY)
        while true {
            let n = send(socket(bio), data, count, Int32(MSG_NOSIGNAL))
            if n >= 0 {
                written?.pointee = n
                return 1
            }
            if errno == EINTR { continue }
            if errno == EAGAIN || errno == EWOULDBLOCK { BIO_set_flags(bio, BIO_FLAGS_WRITE | BIO_FLAGS_SHOULD_RETRY) }
            return 0
        }
    }
    _ = BIO_meth_set_read_ex(method) { bio, data, count, read in
        guard let bio else { return 0 }
        BIO_clear_flags(bio, BIO_FLAGS_READ | BIO_FLAGS_WRITE | BIO_FLAGS_IO_SPECIAL | BIO_FLAGS_SHOULD_RETRY)
        while true {
            let n = recv(socket(bio), data, count, 0)
            if n > 0 {
                read?.pointee = n
                return 1
            }
            if n == 0 {
                if count > 0 { BIO_set_flags(bio, BIO_FLAGS_IN_EOF) }
                return 0
            }
            if errno == EINTR { continue }
            if errno == EAGAIN || errno == EWOULDBLOCK { BIO_set_flags(bio, BIO_FLAGS_READ | BIO_FLAGS_SHOULD_RETRY) }
            return 0
        }
    }
    _ = BIO_meth_set_ctrl(method) { bio, command, _, _ in
        switch command {
        case BIO_CTRL_FLUSH: return 1
        case BIO_CTRL_EOF: return bio.map { BIO_test_flags($0, BIO_FLAGS_IN_EOF) != 0 ? 1 : 0 } ?? 0
        default: return 0
        }
    }
    return method
}()
