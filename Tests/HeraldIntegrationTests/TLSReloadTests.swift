import Foundation
import Glibc
import Testing
@testable import HeraldTestSupport

/// `herald reload` deploys a renewed certificate without a restart (issue 5).
@Suite("TLS certificate renewal by reload", .serialized)
struct TLSReloadTests {
    /// A fresh self-signed pair from deploy/dev-cert.sh (its own CA for verification).
    static func makePair(in directory: URL) throws -> (cert: String, key: String) {
        let result = try runShell("/bin/sh '\(TestCertificates.packageRoot)/deploy/dev-cert.sh' '\(directory.path)'", timeout: 60)
        guard result.status == .exited(0) else { throw HarnessError.startFailed("dev-cert.sh: \(result.output)") }
        return (directory.appendingPathComponent("server-cert.pem").path, directory.appendingPathComponent("server-key.pem").path)
    }

    @Test("reload picks up a renewed certificate; the old one is no longer served")
    func reloadServesTheRenewedCertificate() throws {
        let work = try makeTempDir("herald-tls-renew")
        defer { try? FileManager.default.removeItem(at: work) }
        let first = work.appendingPathComponent("first"), second = work.appendingPathComponent("second")
        let live = work.appendingPathComponent("live")
        for directory in [first, second, live] { try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true) }
        let old = try Self.makePair(in: first)
        let new = try Self.makePair(in: second)
        let cert = live.appendingPathComponent("cert.pem").path, key = live.appendingPathComponent("key.pem").path
        try FileManager.default.copyItem(atPath: old.cert, toPath: cert)
        try FileManager.default.copyItem(atPath: old.key, toPath: key)

        let redis = try RedisServer()
        let tlsPort = try FreePort.pick()
        var options = HeraldOptions()
        options.workers = 1
        options.extraArguments = ["--redis", redis.url, "--tls-port", String(tlsPort), "--cert", cert, "--key", key]
        try withHerald(options) { server in
            let before = try TLSClient(port: tlsPort, TLSClient.Options(caFile: old.cert))
            #expect(try before.readLine().hasPrefix(#"{"welcome""#))

            // Renew: replace the files, then reload.
            for (source, target) in [(new.cert, cert), (new.key, key)] {
                try FileManager.default.removeItem(atPath: target)
                try FileManager.default.copyItem(atPath: source, toPath: target)
            }
            let reload = try ClusterTests.cli(server, ["reload"])
            #expect(reload.status == .exited(0), "reload: \(reload.stderr)")
            _ = try ClusterTests.waitForStatus(server, timeout: 20, "the reload to finish") { status in
                status["supervisor"]?["reloading"]?.boolValue == false
                    && (status["workers"]?.arrayValue ?? []).count == 1
                    && (status["workers"]?.arrayValue ?? []).allSatisfy { $0["state"]?.stringValue == "running" }
            }
            // The client of the old worker got the goodbye; new clients see the new certificate.
            #expect(try before.readLine().contains(#""reason":"server shutdown""#))
            let after = try TLSClient(port: tlsPort, TLSClient.Options(caFile: new.cert))
            #expect(try after.readLine().hasPrefix(#"{"welcome""#))
            #expect(throws: (any Error).self, "the old certificate is no longer served") {
                _ = try TLSClient(port: tlsPort, TLSClient.Options(caFile: old.cert))
            }
        }
    }
}
