import Glibc
import HeraldCore
import HeraldLoop
import HeraldTLS

/// The sockets `herald start` listens on: the main port (plain, or TLS with `secure`),
/// then the optional additional TLS port (`tlsPort`). The supervisor binds them in this
/// order and hands them to every worker; each worker loads the certificate itself, so
/// new workers (a reload) pick up a renewed one.
enum Listeners {
    struct Failure: Error, CustomStringConvertible { let description: String }

    /// The TLS context the configuration asks for (nil when no listener speaks TLS).
    static func tlsContext(_ configuration: Configuration) throws(Failure) -> TLSContext? {
        guard configuration.usesTLS else { return nil }
        guard !configuration.certFile.isEmpty, !configuration.keyFile.isEmpty else {
            let why = configuration.secure ? "secure is on" : "tlsPort is \(configuration.tlsPort)"
            throw Failure(description: "\(why) but certFile and keyFile are not both set (--cert FILE --key FILE); `deploy/dev-cert.sh` makes a development pair")
        }
        do {
            return try TLSContext(TLSSettings(certFile: configuration.certFile, keyFile: configuration.keyFile,
                                              caFile: configuration.caFile.isEmpty ? nil : configuration.caFile,
                                              minVersion: configuration.tlsMinVersion, ciphers: configuration.tlsCiphers))
        } catch {
            throw Failure(description: "TLS: \(error)")
        }
    }

    /// Checks the TLS settings, then binds one set of listeners (the main port, then
    /// the TLS port) for one worker slot. Every slot gets its own sockets on the same
    /// ports (SO_REUSEPORT), so the kernel spreads connections evenly over the workers;
    /// `ports` are the ports slot 0 got (nil for slot 0 itself, which may ask for port 0).
    static func bind(_ configuration: Configuration, ports: [Int]? = nil) throws(Failure) -> [Int32] {
        let tls = try tlsContext(configuration)
        _ = tls
        let tlsBind = configuration.tlsBind.isEmpty ? configuration.bind : configuration.tlsBind
        if configuration.tlsPort != 0 && configuration.tlsPort == configuration.port && tlsBind == configuration.bind {
            throw Failure(description: "tlsPort \(configuration.tlsPort) is the same as port; use secure=true for a TLS-only main port")
        }
        var bound: [Int32] = []
        func listen(_ host: String, _ port: Int, tls: Bool) throws(Failure) {
            do {
                bound.append(try Sockets.listen(host: host, port: ports?[bound.count] ?? port, reusePort: true))
            } catch {
                for fd in bound { close(fd) }
                log.error("cluster.bind.failed", ["bind": host, "port": String(port), "tls": String(tls), "error": error.description])
                throw Failure(description: "cannot listen on \(host):\(port): \(error)")
            }
        }
        try listen(configuration.bind, configuration.port, tls: configuration.secure)
        if configuration.tlsPort != 0 { try listen(tlsBind, configuration.tlsPort, tls: true) }
        return bound
    }

    /// What a worker serves on the inherited sockets, in the order `bind` made them.
    @LoopActor
    static func sockets(_ configuration: Configuration, listenFDs: [Int32]) throws(Failure) -> [ListeningSocket] {
        let tls = try tlsContext(configuration)
        return listenFDs.enumerated().map { index, fd in
            let speaksTLS = index == 0 ? configuration.secure : true
            if speaksTLS, let tls {
                log.info("server.tls", ["port": String(Sockets.localPort(of: fd)), "cert": configuration.certFile,
                                        "minVersion": configuration.tlsMinVersion,
                                        "clientCertificates": configuration.caFile.isEmpty ? "no" : "required"])
                return ListeningSocket(fd: fd, transports: TLSTransportFactory(context: tls, handshakeTimeout: configuration.tlsHandshakeTimeout))
            }
            return ListeningSocket(fd: fd, transports: SocketTransportFactory())
        }
    }
}
