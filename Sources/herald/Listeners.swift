import Glibc
import HeraldCore
import HeraldLoop
import HeraldTLS

/// A socket `herald start` listens on, bound before the loop starts, and whether it
/// speaks TLS.
struct BoundListener {
    let fd: Int32
    let bind: String
    let tls: TLSContext?

    var port: Int { Sockets.localPort(of: fd) }

    /// What the worker serves: plain TCP or TLS transports on this socket.
    @LoopActor
    func listeningSocket(_ configuration: Configuration) -> ListeningSocket {
        if let tls {
            return ListeningSocket(fd: fd, transports: TLSTransportFactory(context: tls, handshakeTimeout: configuration.tlsHandshakeTimeout))
        }
        return ListeningSocket(fd: fd, transports: SocketTransportFactory())
    }
}

/// Binds the main port (plain, or TLS with `secure`) and the optional additional TLS
/// port (`tlsPort`), loading the certificate first so that a bad one stops the start
/// with a clear message.
enum Listeners {
    struct Failure: Error, CustomStringConvertible { let description: String }

    static func open(_ configuration: Configuration) throws(Failure) -> [BoundListener] {
        var tls: TLSContext?
        if configuration.usesTLS {
            guard !configuration.certFile.isEmpty, !configuration.keyFile.isEmpty else {
                let why = configuration.secure ? "secure is on" : "tlsPort is \(configuration.tlsPort)"
                throw Failure(description: "\(why) but certFile and keyFile are not both set (--cert FILE --key FILE); `deploy/dev-cert.sh` makes a development pair")
            }
            do {
                tls = try TLSContext(TLSSettings(certFile: configuration.certFile, keyFile: configuration.keyFile,
                                                 caFile: configuration.caFile.isEmpty ? nil : configuration.caFile,
                                                 minVersion: configuration.tlsMinVersion, ciphers: configuration.tlsCiphers))
            } catch {
                throw Failure(description: "TLS: \(error)")
            }
        }
        let tlsBind = configuration.tlsBind.isEmpty ? configuration.bind : configuration.tlsBind
        if configuration.tlsPort != 0 && configuration.tlsPort == configuration.port && tlsBind == configuration.bind {
            throw Failure(description: "tlsPort \(configuration.tlsPort) is the same as port; use secure=true for a TLS-only main port")
        }
        var bound: [BoundListener] = []
        func listen(_ host: String, _ port: Int, tls: TLSContext?) throws(Failure) {
            do {
                let fd = try Sockets.listen(host: host, port: port)
                bound.append(BoundListener(fd: fd, bind: host, tls: tls))
            } catch {
                for listener in bound { close(listener.fd) }
                log.error("server.bind.failed", ["bind": host, "port": String(port), "tls": tls == nil ? "false" : "true",
                                                 "error": error.description])
                throw Failure(description: "cannot listen on \(host):\(port): \(error)")
            }
        }
        try listen(configuration.bind, configuration.port, tls: configuration.secure ? tls : nil)
        if configuration.tlsPort != 0 { try listen(tlsBind, configuration.tlsPort, tls: tls) }
        return bound
    }
}
