import CHeraldTLS
import COpenSSL
import Glibc

/// `--tls`: TLS sessions over connections the connector has opened. Handshakes run one
/// connection at a time (poll on its socket), before the measured load starts.
enum BenchTLS {
    static func start(_ connections: [Connection], endpoint: Endpoint, readWelcome: Bool) throws {
        guard let context = SSL_CTX_new(TLS_client_method()) else {
            throw BenchError.failure("cannot create an OpenSSL context")
        }
        defer { SSL_CTX_free(context) }  // sessions keep their own reference
        herald_tls_configure_client(context)
        SSL_CTX_set_verify(context, SSL_VERIFY_NONE, nil)
        for (i, c) in connections.enumerated() {
            guard let ssl = SSL_new(context) else { throw BenchError.failure("SSL_new failed") }
            c.tls = ssl
            SSL_set_fd(ssl, c.fd)
            if endpoint.host.first?.isLetter == true { _ = herald_tls_set_host_name(ssl, endpoint.host) }
            let deadline = Clock.nanos() + 10_000_000_000
            while true {
                ERR_clear_error()
                let rc = SSL_connect(ssl)
                if rc == 1 { break }
                let code = SSL_get_error(ssl, rc)
                guard code == SSL_ERROR_WANT_READ || code == SSL_ERROR_WANT_WRITE, Clock.nanos() < deadline else {
                    var text = [CChar](repeating: 0, count: 256)
                    herald_tls_last_error(&text, text.count)
                    let reason = String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
                    throw BenchError.failure("TLS handshake \(i) with \(endpoint) failed: \(reason.isEmpty ? "SSL error \(code)" : reason) (is it a TLS port?)")
                }
                var pfd = pollfd(fd: c.fd, events: Int16(code == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT), revents: 0)
                _ = poll(&pfd, 1, 100)
            }
            guard readWelcome else { continue }
            while c.input.nextLine() == nil {
                let n = c.read()
                if n == -1 {
                    guard Clock.nanos() < deadline else { throw BenchError.failure("no welcome line over TLS from \(endpoint)") }
                    var pfd = pollfd(fd: c.fd, events: Int16(POLLIN), revents: 0)
                    _ = poll(&pfd, 1, 100)
                } else if n <= 0 {
                    throw BenchError.failure("connection \(i) to \(endpoint) closed before the welcome line over TLS")
                }
            }
        }
    }
}
