import CHeraldTLS
import Foundation
import Glibc
import Testing
@testable import HeraldTestSupport

/// PROTOCOL.md §9: the same protocol inside TLS, on a TLS listener beside the plain port
/// (`--tls-port`) or on the main port (`--secure`). Certificates are made at test time.
@Suite("TLS")
struct TLSTests {
    /// Runs `body` against herald with a plain port and a TLS port.
    func withTLSHerald(_ settings: [(String, String)] = [], extra: [String] = [],
                       _ body: (HeraldProcess, UInt16, TestCertificates) throws -> Void) throws {
        let certs = try TestCertificates.get()
        let tlsPort = try FreePort.pick()
        var options = HeraldOptions(settings)
        options.extraArguments = ["--tls-port", String(tlsPort), "--cert", certs.serverCert, "--key", certs.serverKey] + extra
        try withHerald(options) { server in try body(server, tlsPort, certs) }
    }

    func client(_ port: UInt16, _ certs: TestCertificates) throws -> TLSClient {
        try TLSClient(port: port, TLSClient.Options(caFile: certs.serverCert))
    }

    @Test("welcome, verbs and actions over TLS; quit ends with close_notify")
    func verbsAndActions() throws {
        try withTLSHerald { server, tlsPort, certs in
            let tls = try client(tlsPort, certs)
            try expectLine(try tls.readLine(), #"{"welcome":"Hello! Welcome to the actionhero api","room":"defaultRoom","context":"api"}"#)
            try tls.send("paramAdd key=some value")
            try expectLine(try tls.readLine(), #"{"status":"OK","context":"response","data":null,"messageCount":1}"#)
            try tls.send("paramView key")
            try expectLine(try tls.readLine(), #"{"status":"OK","context":"response","data":"some value","messageCount":2}"#)
            try tls.send("randomNumber")
            try expectLine(try tls.readLine(), #"{"randomNumber":<NUM>,"context":"response","messageCount":3}"#)
            try tls.send(#"{"action":"cacheTest","params":{"key":"k","value":"v"}}"#)
            try expectLine(try tls.readLine(), #"{"cacheTestResults":{"saveResp":true,"sizeResp":1,"loadResp":{"key":"cacheTest_k","value":"v","expireTimestamp":<INT>,"createdAt":<INT>,"readAt":<INT>},"deleteResp":true},"context":"response","messageCount":4}"#)
            try tls.send("detailsView")
            try expectLine(try tls.readLine(), #"{"status":"OK","context":"response","data":{"id":"<UUID>","remoteIP":"127.0.0.1","remotePort":<INT>,"params":{"key":"some value","action":"randomNumber"},"connectedAt":<INT>,"room":"defaultRoom","rooms":["defaultRoom"],"totalActions":2,"pendingActions":0},"messageCount":5}"#)
            try tls.send("sleepTest")  // replies after 1 s, on the loop
            try tls.send("quit")
            try expectLine(try tls.readLine(), #"{"sleepStarted":<INT>,"sleepEnded":<INT>,"sleepDelta":<INT>,"sleepDuration":1000,"context":"response","messageCount":6}"#)
            try expectLine(try tls.readLine(), #"{"status":"Bye!","context":"api","reason":"quit requested"}"#)
            let ending = try tls.expectClosed()
            try check(ending == .closeNotify, "the server should end a quit with close_notify, got \(ending)")
            try check(tls.protocolVersion == "TLSv1.3", "expected TLS 1.3 by default, got \(tls.protocolVersion)")
        }
    }

    @Test("big requests and replies cross many TLS records both ways")
    func bigLines() throws {
        try withTLSHerald([("maxOutputBytes", "4194304")]) { server, tlsPort, certs in
            let tls = try client(tlsPort, certs)
            _ = try tls.readLine()
            let value = String(repeating: "0123456789abcdef", count: 40_000)  // 640 kB, ~40 records
            try tls.send("paramAdd big=\(value)")
            try expectLine(try tls.readLine(), #"{"status":"OK","context":"response","data":null,"messageCount":1}"#)
            for n in 2...4 { try tls.send("paramView big"); _ = n }
            for n in 2...4 {
                let line = try tls.readLine(timeout: 10)
                try check(line == #"{"status":"OK","context":"response","data":"\#(value)","messageCount":\#(n)}"#,
                          "reply \(n) to paramView big is wrong (\(line.count) bytes)")
            }
            // Many small requests in one TLS write: all answered, in order.
            try tls.sendRaw(Array(String(repeating: "randomNumber\r\n", count: 200).utf8))
            for n in 5..<205 { try expectLine(try tls.readLine(), #"{"randomNumber":<NUM>,"context":"response","messageCount":\#(n)}"#) }
            tls.closeNotify()
        }
    }

    @Test("chat between a TLS client and a plain client")
    func chatAcrossTransports() throws {
        try withTLSHerald { server, tlsPort, certs in
            let tls = try client(tlsPort, certs)
            _ = try tls.readLine()
            try tls.send("detailsView")
            let tlsID = try expectLine(try tls.readLine(), #"{"status":"OK","context":"response","data":{"id":"<UUID>"<ANY>"#)[0]
            let (plain, plainID) = try server.connectWithId()
            try tls.send("say defaultRoom hello from TLS")
            try expectLine(try tls.readLine(), #"{"status":"OK","context":"response","data":null,"messageCount":2}"#)
            try plain.expect(#"{"message":"hello from TLS","room":"defaultRoom","from":"\#(tlsID)","context":"user","sentAt":<INT>}"#)
            try plain.roundTrip("say hello from plain", #"{"status":"OK","context":"response","data":null,"messageCount":2}"#)
            try expectLine(try tls.readLine(), #"{"message":"hello from plain","room":"defaultRoom","from":"\#(plainID)","context":"user","sentAt":<INT>}"#)
            try plain.roundTrip("roomView", #"{"status":"OK","context":"response","data":{"room":"defaultRoom","members":{<ANY>},"membersCount":2},"messageCount":3}"#)
            tls.closeNotify()
        }
    }

    @Test("plain text to the TLS port: a clean close and one log line")
    func plainTextToTLSPort() throws {
        try withTLSHerald { server, tlsPort, certs in
            let plain = try LineClient(port: tlsPort)
            try plain.send("randomNumber")
            let end = plain.drain(timeout: 5, maxBytes: 1 << 16).end
            try check("\(end)" != "timedOut", "the server did not close a plain-text client on the TLS port")
            let lines = try server.waitForLog("tls handshake failed")
            try check(lines.count == 1, "expected one log line for the failed handshake, got \(lines)")
            try server.requireServing("after plain text on the TLS port")
            let tls = try client(tlsPort, certs)
            _ = try tls.readLine()
        }
    }

    @Test("a handshake cut off halfway, and garbage instead of a handshake")
    func cutOffHandshake() throws {
        try withTLSHerald { server, tlsPort, certs in
            let hello = TLSClient.clientHello()
            try check(hello.count > 100 && hello[0] == 0x16, "could not make a ClientHello (\(hello.count) bytes)")
            let half = try LineClient(port: tlsPort)
            try half.sendRaw(Array(hello[0..<(hello.count / 2)]))
            usleep(100_000)
            half.close()
            _ = try server.waitForLog("client closed during the tls handshake")
            // A whole ClientHello, then gone without reading the answer.
            let whole = try LineClient(port: tlsPort)
            try whole.sendRaw(hello)
            usleep(100_000)
            whole.resetClose()
            // A handshake record header followed by junk.
            let junk = try LineClient(port: tlsPort)
            try junk.sendRaw([0x16, 0x03, 0x01, 0x00, 0x40] + (0..<64).map { UInt8(truncatingIfNeeded: $0 &* 37) })
            _ = junk.drain(timeout: 5, maxBytes: 1 << 16)
            let deadline = Deadline(5)
            func closes() -> [String] { server.logLines(containing: "event=connection.close").filter { !$0.contains("quit requested") } }
            while closes().count < 3 && !deadline.passed { usleep(20_000) }
            try check(closes().count == 3, "expected 3 closes, one line each, got \(closes())")
            try check(closes().allSatisfy { $0.contains("tls") }, "each close should say what went wrong in TLS: \(closes())")
            let tls = try client(tlsPort, certs)
            _ = try tls.readLine()
            try server.requireServing("after broken handshakes")
        }
    }

    @Test("garbage records after the handshake, and a close without close_notify")
    func garbageAndUncleanClose() throws {
        try withTLSHerald { server, tlsPort, certs in
            let garbage = try client(tlsPort, certs)
            _ = try garbage.readLine()
            garbage.sendBypassingTLS([0x17, 0x03, 0x03, 0x00, 0x20] + [UInt8](repeating: 0xAB, count: 32))
            let ending = try garbage.expectClosed()
            try check(ending != .closeNotify, "a corrupt record must not get a polite close, got \(ending)")
            _ = try server.waitForLog("tls error")

            let rude = try client(tlsPort, certs)
            _ = try rude.readLine()
            try rude.send("randomNumber")
            _ = try rude.readLine()
            rude.abort()
            let lines = try server.waitForLog("client closed without close_notify")
            try check(lines.count == 1, "expected one log line, got \(lines)")

            let polite = try client(tlsPort, certs)
            _ = try polite.readLine()
            polite.closeNotify()
            _ = try server.waitForLog(#"reason="client closed""#)
            try check(server.logLines(containing: #"reason="client closed""#).count == 1,
                      "a close_notify close is an ordinary client close: \(server.logLines(containing: "connection.close"))")
            try server.requireServing("after garbage and unclean closes")
        }
    }

    @Test("a stalled handshake is closed after tlsHandshakeTimeout")
    func handshakeTimeout() throws {
        try withTLSHerald([("tlsHandshakeTimeout", "300")]) { server, tlsPort, certs in
            let silent = try LineClient(port: tlsPort)
            let started = Deadline.now()
            try silent.expectClosed(timeout: 5)
            let elapsed = Deadline.now() - started
            try check(elapsed >= 0.25 && elapsed < 3, "closed after \(elapsed) s, expected about 0.3 s")
            let lines = try server.waitForLog("tls handshake timed out after 300 ms")
            try check(lines.count == 1, "expected one log line, got \(lines)")
            // A client that completes its handshake in time is not affected later on.
            let tls = try client(tlsPort, certs)
            _ = try tls.readLine()
            usleep(500_000)
            try tls.send("randomNumber")
            try expectLine(try tls.readLine(), #"{"randomNumber":<NUM>,"context":"response","messageCount":1}"#)
            tls.closeNotify()
        }
    }

    @Test("a client that renegotiates is refused and closed")
    func renegotiationRefused() throws {
        try withTLSHerald { server, tlsPort, certs in
            let tls = try TLSClient(port: tlsPort, TLSClient.Options(caFile: certs.serverCert, maxVersion: HERALD_TLS1_2_VERSION))
            _ = try tls.readLine()
            try check(tls.protocolVersion == "TLSv1.2", "expected TLS 1.2, got \(tls.protocolVersion)")
            _ = tls.renegotiate()
            let lines = try server.waitForLog("renegotiate")
            try check(lines.count == 1, "expected one log line, got \(lines)")
            try server.requireServing("after a renegotiation attempt")
        }
    }

    @Test("client certificates: required and verified with caFile")
    func clientCertificates() throws {
        let certs = try TestCertificates.get()
        try withTLSHerald(extra: ["--ca", certs.clientCA]) { server, tlsPort, certs in
            let good = try TLSClient(port: tlsPort, TLSClient.Options(caFile: certs.serverCert, certFile: certs.clientCert, keyFile: certs.clientKey))
            _ = try good.readLine()
            try good.send("randomNumber")
            try expectLine(try good.readLine(), #"{"randomNumber":<NUM>,"context":"response","messageCount":1}"#)
            good.closeNotify()
            // Without a certificate: TLS 1.3 lets the client finish first, then the server refuses.
            var refused = false
            if let anonymous = try? TLSClient(port: tlsPort, TLSClient.Options(caFile: certs.serverCert)) {
                refused = (try? anonymous.readLine(timeout: 3)) == nil
            } else {
                refused = true
            }
            try check(refused, "a client without a certificate was served")
            _ = try server.waitForLog("certificate")
            // A certificate from another CA (the server's own self-signed one).
            let stranger = try? TLSClient(port: tlsPort, TLSClient.Options(caFile: certs.serverCert, certFile: certs.serverCert, keyFile: certs.serverKey))
            try check(stranger.map { (try? $0.readLine(timeout: 3)) == nil } ?? true, "a client with an untrusted certificate was served")
        }
    }

    @Test("the real openssl s_client works like telnet on the TLS port")
    func opensslSClient() throws {
        try withTLSHerald { server, tlsPort, certs in
            let script = """
            printf 'paramAdd who=s_client\\nparamView who\\nrandomNumber\\nquit\\n' | \
            '\(TestCertificates.opensslPath)' s_client -connect 127.0.0.1:\(tlsPort) -quiet -CAfile '\(certs.serverCert)' -verify_return_error 2>/dev/null
            """
            let (status, output) = try runShell(script, timeout: 20)
            let lines = output.split(whereSeparator: \.isNewline).map { String($0).trimmingCharacters(in: .whitespacesAndNewlines) }.filter { $0.hasPrefix("{") }
            try check(lines.count == 5, "expected welcome, 3 replies and the goodbye from s_client (\(status)), got:\n\(output)")
            try expectLine(lines[0], #"{"welcome":"Hello! Welcome to the actionhero api","room":"defaultRoom","context":"api"}"#)
            try expectLine(lines[2], #"{"status":"OK","context":"response","data":"s_client","messageCount":2}"#)
            try expectLine(lines[3], #"{"randomNumber":<NUM>,"context":"response","messageCount":3}"#)
            try expectLine(lines[4], #"{"status":"Bye!","context":"api","reason":"quit requested"}"#)
        }
    }

    @Test("--secure: the main port speaks TLS")
    func securePort() throws {
        let certs = try TestCertificates.get()
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let port = try FreePort.pick()
        var env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("HERALD_") }
        env["HERALD_RUN_DIR"] = dir.path  // its own pidfile, beside tests running in parallel
        let child = try ChildProcess(path: heraldBinaryPath(),
                                     arguments: ["start", "--port", String(port), "--bind", "127.0.0.1", "--secure",
                                                 "--cert", certs.serverCert, "--key", certs.serverKey],
                                     environment: env, directory: dir,
                                     stdoutPath: dir.appendingPathComponent("out").path,
                                     stderrPath: dir.appendingPathComponent("err").path)
        defer { _ = child.stop() }
        var tls: TLSClient?
        let deadline = Deadline(10)
        while tls == nil && !deadline.passed && child.isRunning {
            tls = try? TLSClient(port: port, TLSClient.Options(caFile: certs.serverCert, timeout: 2))
            if tls == nil { usleep(20_000) }
        }
        let log = (try? String(contentsOfFile: dir.appendingPathComponent("err").path, encoding: .utf8)) ?? ""
        guard let tls else { throw HarnessError.startFailed("no TLS on the main port:\n\(log)") }
        try expectLine(try tls.readLine(), #"{"welcome":"Hello! Welcome to the actionhero api","room":"defaultRoom","context":"api"}"#)
        try tls.send("roomView")
        try expectLine(try tls.readLine(), #"{"status":"OK","context":"response","data":{"room":"defaultRoom","members":{<ANY>},"membersCount":1},"messageCount":1}"#)
        // Server shutdown: the goodbye, then close_notify.
        child.signal(SIGTERM)
        try expectLine(try tls.readLine(), #"{"status":"Bye!","context":"api","reason":"server shutdown"}"#)
        let ending = try tls.expectClosed()
        try check(ending == .closeNotify, "expected close_notify after the goodbye, got \(ending)")
        let status = child.waitForExit(timeout: 10)
        try check(status == .exited(0), "herald should exit 0 after SIGTERM, got \(String(describing: status))")
    }

    @Test("bad TLS settings stop the start with a clear message")
    func badSettings() throws {
        let certs = try TestCertificates.get()
        let cases: [([String], String)] = [
            (["--secure"], "certFile and keyFile are not both set"),
            (["--secure", "--cert", "/nonexistent/cert.pem", "--key", certs.serverKey], "cannot be read: No such file or directory"),
            (["--secure", "--cert", certs.serverCert, "--key", certs.otherKey], "does not match the certificate"),
            (["--secure", "--cert", certs.serverKey, "--key", certs.serverKey], "is not a PEM certificate"),
            (["--tls-port", "1", "--cert", certs.serverCert, "--key", certs.serverCert], "is not a usable PEM private key"),
            (["--secure", "--cert", certs.serverCert, "--key", certs.serverKey, "--set", "tlsMinVersion=1.1"], "tlsMinVersion must be 1.2 or 1.3"),
        ]
        for (arguments, message) in cases {
            let result = try runHerald(["start", "--port", "0", "--bind", "127.0.0.1"] + arguments)
            try check(result.status != .exited(0) && result.stderr.contains(message),
                      "`herald start \(arguments.joined(separator: " "))` should fail saying '\(message)'; got \(result.status):\n\(result.stderr)")
        }
    }
}
