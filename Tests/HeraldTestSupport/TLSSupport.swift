import CHeraldTLS
import COpenSSL
import Foundation
import Glibc

/// Certificates made at test time with the openssl CLI: the server pair from
/// `deploy/dev-cert.sh`, a test CA (`clientCA`, also `ca`) with a client certificate and
/// a second server certificate it signed (for a client that verifies the server against a
/// CA), and a second key that matches nothing. Shared by the integration and client tests.
struct TestCertificates: Sendable {
    let directory: String
    var serverCert: String { directory + "/server-cert.pem" }
    var serverKey: String { directory + "/server-key.pem" }
    var clientCA: String { directory + "/client-ca.pem" }
    var clientCert: String { directory + "/client-cert.pem" }
    var clientKey: String { directory + "/client-key.pem" }
    var otherKey: String { directory + "/other-key.pem" }
    /// The test CA (the same file as `clientCA`).
    var ca: String { clientCA }
    /// A server certificate the test CA signed, for localhost, 127.0.0.1 and ::1.
    var signedServerCert: String { directory + "/signed-server-cert.pem" }
    var signedServerKey: String { directory + "/signed-server-key.pem" }

    /// Made once per test process.
    static let shared: Result<TestCertificates, HarnessError> = Result { () throws(HarnessError) in try make() }

    static func get() throws -> TestCertificates { try shared.get() }

    static var packageRoot: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().path
    }

    static var opensslPath: String {
        for dir in ["/usr/bin", "/usr/local/bin", "/bin"] where access(dir + "/openssl", X_OK) == 0 {
            return dir + "/openssl"
        }
        return "/usr/bin/openssl"
    }

    private static func make() throws(HarnessError) -> TestCertificates {
        let dir: URL
        do { dir = try makeTempDir("herald-tls-certs") } catch { throw HarnessError.startFailed("mkdtemp: \(error)") }
        let certs = TestCertificates(directory: dir.path)
        let ssl = opensslPath
        let ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
        let script = """
        set -e
        cd '\(dir.path)'
        /bin/sh '\(packageRoot)/deploy/dev-cert.sh' .
        '\(ssl)' req -x509 \(ec) -days 2 -subj /CN=herald-test-client-ca -keyout client-ca-key.pem -out client-ca.pem \
            -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
        '\(ssl)' req \(ec) -subj /CN=herald-test-client -keyout client-key.pem -out client.csr 2>/dev/null
        '\(ssl)' x509 -req -in client.csr -CA client-ca.pem -CAkey client-ca-key.pem -CAcreateserial -days 2 -out client-cert.pem 2>/dev/null
        '\(ssl)' req \(ec) -subj /CN=localhost -keyout signed-server-key.pem -out signed-server.csr \
            -addext subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1 -addext extendedKeyUsage=serverAuth 2>/dev/null
        '\(ssl)' x509 -req -in signed-server.csr -CA client-ca.pem -CAkey client-ca-key.pem -CAcreateserial -days 2 \
            -copy_extensions copyall -out signed-server-cert.pem 2>/dev/null
        '\(ssl)' genpkey -algorithm EC -pkeyopt ec_paramgen_curve:prime256v1 -out other-key.pem 2>/dev/null
        """
        let result = try runShell(script, timeout: 60)
        guard result.status == .exited(0), access(certs.clientCert, R_OK) == 0, access(certs.serverKey, R_OK) == 0,
              access(certs.signedServerCert, R_OK) == 0 else {
            throw HarnessError.startFailed("making test certificates failed (\(result.status)): \(result.output)")
        }
        return certs
    }
}

/// Runs `/bin/sh -c script` to completion; stdout and stderr together.
func runShell(_ script: String, timeout: Double) throws(HarnessError) -> (status: ExitStatus, output: String) {
    let dir: URL
    do { dir = try makeTempDir("herald-sh") } catch { throw HarnessError.startFailed("mkdtemp: \(error)") }
    defer { try? FileManager.default.removeItem(at: dir) }
    let out = dir.appendingPathComponent("out").path
    let child: ChildProcess
    do {
        child = try ChildProcess(path: "/bin/sh", arguments: ["-c", script], environment: ProcessInfo.processInfo.environment,
                                 directory: dir, stdoutPath: out, stderrPath: out)
    } catch let error as HarnessError {
        throw error
    } catch {
        throw HarnessError.startFailed("\(error)")
    }
    guard let status = child.waitForExit(timeout: timeout) else {
        _ = child.stop(grace: 1)
        throw HarnessError.timeout("`sh -c` did not finish within \(timeout) s: \(script)")
    }
    return (status, (try? String(contentsOfFile: out, encoding: .utf8)) ?? "")
}

/// A blocking TLS client for the line protocol, through OpenSSL. Every wait is bounded
/// (SO_RCVTIMEO / SO_SNDTIMEO), so a broken server fails a test instead of hanging it.
final class TLSClient {
    enum Ending: Equatable, CustomStringConvertible {
        case closeNotify
        case endOfFile
        case error(String)
        var description: String {
            switch self {
            case .closeNotify: "close_notify"
            case .endOfFile: "end of file without close_notify"
            case .error(let text): "error: \(text)"
            }
        }
    }

    let port: UInt16
    private(set) var fd: Int32
    private let context: OpaquePointer
    private let ssl: OpaquePointer
    private var buffer: [UInt8] = []

    struct Options {
        var caFile: String?
        var certFile: String?
        var keyFile: String?
        /// E.g. TLS 1.2 only, to try a renegotiation.
        var maxVersion: Int32?
        var timeout: Double = 5
    }

    init(port: UInt16, _ options: Options) throws {
        self.port = port
        fd = try TLSClient.connectTCP(port: port, timeout: options.timeout)
        guard let context = SSL_CTX_new(TLS_client_method()) else { throw HarnessError.system("SSL_CTX_new", 0) }
        self.context = context
        herald_tls_configure_client(context)
        if let maxVersion = options.maxVersion { _ = herald_tls_set_max_version(context, maxVersion) }
        if let caFile = options.caFile {
            SSL_CTX_set_verify(context, SSL_VERIFY_PEER, nil)
            _ = SSL_CTX_load_verify_locations(context, caFile, nil)
        }
        if let certFile = options.certFile, let keyFile = options.keyFile {
            _ = SSL_CTX_use_certificate_chain_file(context, certFile)
            _ = SSL_CTX_use_PrivateKey_file(context, keyFile, SSL_FILETYPE_PEM)
        }
        guard let ssl = SSL_new(context) else { throw HarnessError.system("SSL_new", 0) }
        self.ssl = ssl
        SSL_set_fd(ssl, fd)
        _ = herald_tls_set_host_name(ssl, "localhost")
        _ = SSL_set1_host(ssl, "localhost")
        let deadline = Deadline(options.timeout)
        while true {
            ERR_clear_error()
            let rc = SSL_connect(ssl)
            if rc == 1 { break }
            let code = SSL_get_error(ssl, rc)
            if (code == SSL_ERROR_WANT_READ || code == SSL_ERROR_WANT_WRITE) && !deadline.passed { continue }
            let text = TLSClient.errorText()
            throw HarnessError.closed("TLS handshake with 127.0.0.1:\(port) failed (SSL error \(code)): \(text)")
        }
    }

    deinit {
        SSL_free(ssl)
        SSL_CTX_free(context)
        if fd >= 0 { Glibc.close(fd) }
    }

    var protocolVersion: String { String(cString: SSL_get_version(ssl)) }

    static func connectTCP(port: UInt16, timeout: Double) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw HarnessError.system("socket", errno) }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        setTimeout(fd, SO_SNDTIMEO, timeout)
        setTimeout(fd, SO_RCVTIMEO, timeout)
        var addr = sockaddr_in.loopback(port: port)
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if rc != 0 {
            let err = errno
            Glibc.close(fd)
            throw HarnessError.system("connect to 127.0.0.1:\(port)", err)
        }
        return fd
    }

    static func setTimeout(_ fd: Int32, _ option: Int32, _ seconds: Double) {
        let clamped = max(seconds, 0.001)
        var tv = timeval(tv_sec: Int(clamped), tv_usec: Int((clamped - Double(Int(clamped))) * 1_000_000))
        setsockopt(fd, SOL_SOCKET, option, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    static func errorText() -> String {
        var text = [CChar](repeating: 0, count: 256)
        herald_tls_last_error(&text, text.count)
        return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    func send(_ line: String, terminator: String = "\r\n") throws {
        try sendRaw(Array((line + terminator).utf8))
    }

    func sendRaw(_ bytes: [UInt8]) throws {
        var sent = 0
        let deadline = Deadline(10)
        while sent < bytes.count {
            ERR_clear_error()
            let n = bytes.withUnsafeBytes { SSL_write(ssl, $0.baseAddress! + sent, Int32(bytes.count - sent)) }
            if n > 0 { sent += Int(n); continue }
            let code = SSL_get_error(ssl, n)
            if (code == SSL_ERROR_WANT_WRITE || code == SSL_ERROR_WANT_READ) && !deadline.passed { continue }
            throw HarnessError.closed("SSL_write failed after \(sent) of \(bytes.count) bytes (SSL error \(code)): \(TLSClient.errorText())")
        }
    }

    /// One SSL_read: bytes, nil on a timeout, or how the connection ended.
    private func readSome(_ deadline: Deadline) -> Result<[UInt8]?, TLSEnd> {
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            if deadline.passed { return .success(nil) }
            TLSClient.setTimeout(fd, SO_RCVTIMEO, deadline.remaining)
            ERR_clear_error()
            let n = chunk.withUnsafeMutableBytes { SSL_read(ssl, $0.baseAddress, Int32($0.count)) }
            if n > 0 { return .success(Array(chunk[0..<Int(n)])) }
            let code = SSL_get_error(ssl, n)
            switch code {
            case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE: continue
            case SSL_ERROR_ZERO_RETURN: return .failure(TLSEnd(ending: .closeNotify))
            case SSL_ERROR_SYSCALL:
                let err = errno
                if err == EAGAIN || err == EINTR { continue }
                return .failure(TLSEnd(ending: err == 0 ? .endOfFile : .error(String(cString: strerror(err)))))
            default:
                let text = TLSClient.errorText()
                if text.contains("unexpected eof") { return .failure(TLSEnd(ending: .endOfFile)) }
                return .failure(TLSEnd(ending: .error(text)))
            }
        }
    }

    struct TLSEnd: Error { let ending: Ending }

    /// How far `buffer` has been searched for a line end (so a long line is scanned once).
    private var scanned = 0

    func readLine(timeout: Double = 5) throws -> String {
        let deadline = Deadline(timeout)
        while true {
            let found: Int? = buffer.withUnsafeBufferPointer { bytes in
                var i = max(0, scanned - 1)
                while i + 1 < bytes.count {
                    if bytes[i] == 13 && bytes[i + 1] == 10 { return i }
                    i += 1
                }
                return nil
            }
            if let index = found {
                let line = String(decoding: buffer[..<index], as: UTF8.self)
                buffer.removeFirst(index + 2)
                scanned = 0
                return line
            }
            scanned = buffer.count
            switch readSome(deadline) {
            case .success(let bytes?): buffer += bytes
            case .success(nil):
                throw HarnessError.timeout("no complete line over TLS within \(timeout) s; have \(describe(buffer))")
            case .failure(let end):
                throw HarnessError.closed("TLS connection ended (\(end.ending)) while a line was awaited; have \(describe(buffer))")
            }
        }
    }

    /// Waits for the server to end the connection; returns how it ended.
    func expectClosed(timeout: Double = 5) throws -> Ending {
        let deadline = Deadline(timeout)
        while true {
            switch readSome(deadline) {
            case .success(let bytes?):
                throw HarnessError.mismatch("expected the TLS connection to close, got more data: \(describe(bytes))")
            case .success(nil): throw HarnessError.timeout("the server did not close the TLS connection within \(timeout) s")
            case .failure(let end): return end.ending
            }
        }
    }

    /// Sends close_notify, then closes the socket.
    func closeNotify() {
        guard fd >= 0 else { return }
        _ = SSL_shutdown(ssl)
        Glibc.close(fd)
        fd = -1
    }

    /// Closes the socket without close_notify.
    func abort() {
        guard fd >= 0 else { return }
        Glibc.close(fd)
        fd = -1
    }

    /// Writes raw bytes to the socket under the TLS session (garbage records).
    func sendBypassingTLS(_ bytes: [UInt8]) {
        _ = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }

    /// Asks for a TLS 1.2 renegotiation and drives it; returns how the connection ended.
    func renegotiate() -> Ending {
        _ = herald_tls_renegotiate(ssl)
        ERR_clear_error()
        let rc = SSL_do_handshake(ssl)
        if rc != 1 {
            let code = SSL_get_error(ssl, rc)
            if code != SSL_ERROR_WANT_READ && code != SSL_ERROR_WANT_WRITE { return .error(TLSClient.errorText()) }
        }
        return (try? expectClosed(timeout: 5)) ?? .error("still open")
    }

    /// The first flight of a TLS client (its ClientHello), made with memory BIOs.
    static func clientHello() -> [UInt8] {
        guard let context = SSL_CTX_new(TLS_client_method()), let ssl = SSL_new(context) else { return [] }
        defer { SSL_free(ssl); SSL_CTX_free(context) }
        let rbio = BIO_new(BIO_s_mem()), wbio = BIO_new(BIO_s_mem())
        SSL_set_bio(ssl, rbio, wbio)
        SSL_set_connect_state(ssl)
        _ = SSL_do_handshake(ssl)
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4_096)
        while true {
            let n = chunk.withUnsafeMutableBytes { BIO_read(wbio, $0.baseAddress, Int32($0.count)) }
            if n <= 0 { break }
            out += chunk[0..<Int(n)]
        }
        return out
    }
}

extension HeraldProcess {
    /// Lines of herald's log that mention `text`.
    func logLines(containing text: String) -> [String] {
        stderrText().split(separator: "\n").map(String.init).filter { $0.contains(text) }
    }

    /// Waits until herald has logged a line containing `text`; returns the matches.
    func waitForLog(_ text: String, timeout: Double = 5) throws -> [String] {
        let deadline = Deadline(timeout)
        while true {
            let lines = logLines(containing: text)
            if !lines.isEmpty { return lines }
            if deadline.passed { throw HarnessError.timeout("herald logged no line containing \(text) within \(timeout) s") }
            usleep(20_000)
        }
    }
}
