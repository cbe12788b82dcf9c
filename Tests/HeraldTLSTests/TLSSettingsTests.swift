import HeraldCore
import HeraldProtocol
import HeraldTLS
import Testing

@Suite("TLS settings")
struct TLSSettingsTests {
    @Test("TLS keys parse, default and validate")
    func configurationKeys() throws {
        var configuration = Configuration()
        #expect(!configuration.usesTLS)
        #expect(configuration.tlsHandshakeTimeout == 10_000 && configuration.tlsMinVersion == "1.2")
        try configuration.set("secure", .string("true"), source: "test")
        try configuration.set("tlsPort", .number(5001), source: "test")
        try configuration.set("certFile", .string("/c.pem"), source: "test")
        try configuration.set("tlsMinVersion", .string("1.3"), source: "test")
        #expect(configuration.secure && configuration.tlsPort == 5001 && configuration.usesTLS)
        #expect(configuration.asJSON["certFile"] == .string("/c.pem"))
        #expect(throws: ConfigurationError.self) { try configuration.set("tlsMinVersion", .string("1.1"), source: "test") }
        #expect(throws: ConfigurationError.self) { try configuration.set("tlsPort", .number(70_000), source: "test") }
        #expect(throws: ConfigurationError.self) { try configuration.set("tlsHandshakeTimeout", .number(0), source: "test") }
        let tlsKeys = ["secure", "certFile", "keyFile", "caFile", "tlsPort", "tlsBind",
                       "tlsHandshakeTimeout", "tlsCiphers", "tlsMinVersion"]
        let start = Configuration.keys.firstIndex(of: "secure") ?? 0
        #expect(Array(Configuration.keys[start...].prefix(tlsKeys.count)) == tlsKeys)
        #expect(Configuration.environmentName(for: "tlsHandshakeTimeout") == "HERALD_TLS_HANDSHAKE_TIMEOUT")
    }

    @Test("a missing or non-PEM certificate is refused with the file's name")
    func badFiles() {
        do {
            _ = try TLSContext(TLSSettings(certFile: "/nonexistent/cert.pem", keyFile: "/nonexistent/key.pem"))
            Issue.record("a missing certificate was accepted")
        } catch {
            #expect(error.description.contains("certFile (the certificate) /nonexistent/cert.pem cannot be read"))
        }
        do {
            _ = try TLSContext(TLSSettings(certFile: "/etc/hostname", keyFile: "/etc/hostname"))
            Issue.record("a non-PEM certificate was accepted")
        } catch {
            #expect(error.description.contains("is not a PEM certificate"))
        }
        do {
            _ = try TLSContext(TLSSettings(certFile: "", keyFile: "/etc/hostname"))
            Issue.record("an empty certFile was accepted")
        } catch {
            #expect(error.description.contains("is not set"))
        }
    }
}
