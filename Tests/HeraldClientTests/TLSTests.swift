import Glibc
import HeraldClient
import HeraldProtocol
import Testing
@testable import struct HeraldTestSupport.TestCertificates

// The test certificates are HeraldTestSupport's (TestCertificates): the test CA (`ca`)
// signed the server certificate used here (`signedServerCert`) and the client certificate.

/// A server with a plain port and a TLS port (the test CA's server certificate), stopped
/// by its pid afterwards.
func withTLSServer<R: Sendable>(extra: [String] = [], _ body: (HeraldServer, _ tlsPort: Int, TestCertificates) async throws -> R) async throws -> R {
    let certs = try TestCertificates.get()
    let tlsPort = try freePort()
    return try await withServer(arguments: ["--tls-port", String(tlsPort), "--cert", certs.signedServerCert, "--key", certs.signedServerKey] + extra,
                                alsoWaitFor: [tlsPort]) { server in
        try await body(server, tlsPort, certs)
    }
}

/// Connects and returns the typed error it failed with (nil if it connected).
func connectError(port: Int, host: String = "127.0.0.1", _ options: HeraldClientOptions) async -> HeraldClientError? {
    do throws(HeraldClientError) {
        let client = try await HeraldClient.connect(host: host, port: port, options: options)
        await client.disconnect()
        return nil
    } catch {
        return error
    }
}

@Suite("HeraldClient over TLS against the real herald binary")
struct TLSTests {
    @Test("verified by the test CA: welcome, details, actions in flight at once, goodbye")
    func roundTrip() async throws {
        try await withTLSServer { _, tlsPort, certs in
            for host in ["127.0.0.1", "localhost"] {  // an IP SAN and a DNS SAN (and SNI)
                let options = HeraldClientOptions(connector: .tls(.caFile(certs.ca)))
                let client = try await HeraldClient.connect(host: host, port: tlsPort, options: options)
                #expect(client.welcome.message == "Hello! Welcome to the actionhero api")
                let details = try await client.details()
                #expect(details.room == "defaultRoom")
                let reply = try await client.action("cacheTest", params: ["key": "k", "value": "over tls"], timeout: .seconds(5))
                #expect(reply["cacheTestResults"]?.objectValue?["loadResp"]?.objectValue?["value"] == .string("over tls"))
                // Replies out of order over one TLS session: the slow one was sent first.
                async let slow = client.action("sleepTest", params: ["sleepDuration": 300])
                async let fast = client.action("randomNumber")
                let (s, f) = try await (slow, fast)
                #expect(s["sleepDuration"] == .number(300))
                #expect(f["randomNumber"]?.numberValue != nil)
                #expect(await client.disconnect() == "quit requested")
            }
        }
    }

    @Test("chat between a TLS client and a plain client")
    func chat() async throws {
        try await withTLSServer { server, tlsPort, certs in
            let secure = try await HeraldClient.connect(port: tlsPort, options: HeraldClientOptions(connector: .tls(.caFile(certs.ca))))
            let plain = try await HeraldClient.connect(port: server.port)
            let secureLog = EventLog(secure)
            let plainLog = EventLog(plain)
            try await secure.roomAdd("lobby")
            try await plain.roomAdd("lobby")
            let plainID = try await plain.details().id
            let secureID = try await secure.details().id
            try await plain.say(room: "lobby", message: "hello from plain")
            try await secure.say(room: "lobby", message: "hello from tls")
            #expect(await secureLog.wait { if case .say(let m) = $0 { m.message == "hello from plain" && m.from == plainID } else { false } })
            #expect(await plainLog.wait { if case .say(let m) = $0 { m.message == "hello from tls" && m.from == secureID } else { false } })
            await secure.disconnect()
            await plain.disconnect()
        }
    }

    @Test("not verified (system trust store, or the wrong name): a typed error at once, no hang")
    func verificationFails() async throws {
        try await withTLSServer { _, tlsPort, certs in
            let start = ContinuousClock.now
            let error = await connectError(port: tlsPort, HeraldClientOptions(connector: .tls(), connectTimeout: .seconds(10)))
            guard case .tls(.certificateRejected(let name, let reason))? = error else {
                Issue.record("expected .tls(.certificateRejected), got \(String(describing: error))")
                return
            }
            #expect(name == "127.0.0.1")
            #expect(reason.contains("local issuer"), "\(reason)")
            #expect(ContinuousClock.now - start < .seconds(5))

            let wrongName = TLSClientOptions(trust: .caFile(certs.ca), serverName: "elsewhere.example")
            let mismatch = await connectError(port: tlsPort, HeraldClientOptions(connector: .tls(wrongName)))
            #expect(mismatch == .tls(.certificateRejected(serverName: "elsewhere.example", reason: "hostname mismatch")))

            let missing = await connectError(port: tlsPort, HeraldClientOptions(connector: .tls(.caFile(certs.directory + "/nope.pem"))))
            guard case .tls(.configuration(let why))? = missing else {
                Issue.record("expected .tls(.configuration), got \(String(describing: missing))")
                return
            }
            #expect(why.contains("nope.pem"))
        }
    }

    @Test("insecure: no verification, the session works")
    func insecure() async throws {
        try await withTLSServer { _, tlsPort, _ in
            let client = try await HeraldClient.connect(port: tlsPort, options: HeraldClientOptions(connector: .tls(.insecure)))
            #expect(try await client.action("randomNumber")["randomNumber"]?.numberValue != nil)
            await client.disconnect()
        }
    }

    @Test("TLS to the plain port: a handshake error, no hang")
    func plainPort() async throws {
        try await withTLSServer { server, _, certs in
            let error = await connectError(port: server.port, HeraldClientOptions(connector: .tls(.caFile(certs.ca))))
            guard case .tls(.handshakeFailed(let why))? = error else {
                Issue.record("expected .tls(.handshakeFailed), got \(String(describing: error))")
                return
            }
            #expect(why.contains("TLS port"), "\(why)")
        }
    }

    @Test("a server that never answers the handshake: timed out within the connect timeout")
    func handshakeTimeout() async throws {
        // A listening socket that never accepts: the kernel completes the TCP connect.
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        try #require(fd >= 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let rc = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { p -> Int32 in
                guard bind(fd, p, length) == 0, listen(fd, 8) == 0 else { return -1 }
                return getsockname(fd, p, &length)
            }
        }
        try #require(rc == 0)
        let port = Int(UInt16(bigEndian: address.sin_port))
        let start = ContinuousClock.now
        let error = await connectError(port: port, HeraldClientOptions(connector: .tls(.insecure), connectTimeout: .milliseconds(500)))
        #expect(error == .tls(.timedOut(after: .milliseconds(500))))
        // The timeout itself is the error above; the bound only proves there is no hang.
        // (In the full suite, blocking tests share the 2 cores and the cooperative pool,
        // and resuming this test has been seen to take 20 s.)
        #expect(ContinuousClock.now - start < .seconds(45))
    }

    @Test("client certificates: accepted with one, refused without")
    func clientCertificate() async throws {
        let certs = try TestCertificates.get()
        try await withTLSServer(extra: ["--ca", certs.ca]) { _, tlsPort, certs in
            var options = TLSClientOptions.caFile(certs.ca)
            options.certificateFile = certs.clientCert
            options.keyFile = certs.clientKey
            let client = try await HeraldClient.connect(port: tlsPort, options: HeraldClientOptions(connector: .tls(options)))
            #expect(try await client.details().remoteIP == "127.0.0.1")
            await client.disconnect()
            // Without one: TLS 1.3 finishes the client's side of the handshake, and the
            // server's refusal (an alert) comes before the welcome.
            let error = await connectError(port: tlsPort, HeraldClientOptions(connector: .tls(.caFile(certs.ca))))
            guard case .tls(.handshakeFailed(let why))? = error else {
                Issue.record("expected .tls(.handshakeFailed), got \(String(describing: error))")
                return
            }
            #expect(why.contains("certificate required"), "\(why)")
        }
    }

    @Test("herald console --tls in pipe mode: --ca, --insecure, and a refusal without either")
    func console() async throws {
        try await withTLSServer { _, tlsPort, certs in
            let input = "randomNumber\nparamAdd key=k\nparamView key\n"
            for flags in [["--tls", "--ca", certs.ca], ["--ca", certs.ca], ["--tls", "--insecure"]] {
                let (lines, code, stderr) = try await offPool {
                    try runConsole(["--port", String(tlsPort)] + flags, input: input, waitMilliseconds: 15_000)
                }
                #expect(code == 0, "\(flags): \(stderr)")
                try #require(lines.count == 3, "\(flags): \(lines)")
                #expect(lines[0].contains("\"randomNumber\""))
                #expect(lines[2] == #"{"status":"OK","context":"response","data":"k","messageCount":3}"#)
            }
            let (lines, code, stderr) = try await offPool {
                try runConsole(["--port", String(tlsPort), "--tls"], input: input, waitMilliseconds: 15_000)
            }
            #expect(code == 1)
            #expect(lines.isEmpty)
            #expect(stderr.contains("certificate"), "\(stderr)")
            let (_, usage, usageText) = try await offPool {
                try runConsole(["--port", String(tlsPort), "--ca", certs.ca, "--insecure"], input: "", waitMilliseconds: 15_000)
            }
            #expect(usage == 2)
            #expect(usageText.contains("exclude each other"))
        }
    }
}
