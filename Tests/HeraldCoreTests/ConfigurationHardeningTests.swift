import Foundation
import Glibc
import HeraldProtocol
import Testing
@testable import HeraldCore

/// No input to the configuration loader can crash it (issue 9, item 9): every bad value
/// is a `ConfigurationError` that names the setting; every numeric setting has a maximum.
@Suite("Configuration: hostile inputs")
struct ConfigurationHardeningTests {
    /// The settings whose default is a number.
    static let numericKeys: [String] = Configuration().asJSON.compactMap { key, value in
        if case .number = value { return key }
        return nil
    }

    /// Values no numeric setting accepts.
    static let badNumbers: [JSON] = [
        .number(Double(Int.max)), .number(Double(Int.min)), .number(1e19), .number(-1e19),
        .number(1e300), .number(-1e300), .number(.infinity), .number(-.infinity), .number(.nan),
        .number(1.5), .number(-0.5), .number(Double(Configuration.defaultMaximum) + 1), .number(-1_000_000_000_000),
        .string("9223372036854775807"), .string("9223372036854775808"), .string("-9223372036854775809"),
        .string("99999999999999999999999999999999"), .string("1e400"), .string("-1e400"), .string("1e19"),
        .string("NaN"), .string("nan"), .string("inf"), .string("-inf"), .string("Infinity"), .string("0x10"),
        .string(""), .string(" "), .string("1 2"), .string("1.0000001"), .string("\u{0}"), .string("５"),
        .bool(true), .bool(false), .null, .array([.number(1)]), .object(JSONObject([("a", .number(1))])),
    ]

    @Test("every numeric setting refuses huge, fractional, non-finite and non-numeric values without trapping")
    func numericSettingsRefuseBadValues() {
        #expect(Self.numericKeys.count >= 15, "found \(Self.numericKeys)")
        for key in Self.numericKeys {
            for value in Self.badNumbers {
                var configuration = Configuration()
                do {
                    try configuration.set(key, value, source: "test")
                    Issue.record("\(key) = \(Configuration.describe(value)) was accepted")
                } catch {
                    #expect(error.description.contains(key), "\(error)")
                    #expect(error.description.contains("whole number from"), "\(error)")
                }
                #expect(configuration == Configuration(), "a refused value changes nothing (\(key))")
            }
        }
    }

    @Test("every numeric setting has a maximum no larger than defaultMaximum, and takes it")
    func maximums() throws {
        for key in Self.numericKeys {
            var configuration = Configuration()
            do {
                try configuration.set(key, .number(Double(Configuration.defaultMaximum) + 1), source: "t")
                Issue.record("\(key) accepts more than \(Configuration.defaultMaximum)")
            } catch {
                // The message says the range: its maximum is accepted.
                let text = error.description
                guard let range = text.range(of: " to "), let end = text[range.upperBound...].firstIndex(of: ",") else {
                    Issue.record("no range in \(text)")
                    continue
                }
                let maximum = try #require(Int(text[range.upperBound..<end]), "\(text)")
                try configuration.set(key, .number(Double(maximum)), source: "t")
                try configuration.set(key, .string(String(maximum)), source: "t")
                #expect(throws: ConfigurationError.self) { try configuration.set(key, .number(Double(maximum + 1)), source: "t") }
            }
        }
    }

    @Test("string settings refuse NUL bytes and non-strings; long values are shortened in the message")
    func strings() {
        var configuration = Configuration()
        for key in ["bind", "publicDir", "logFile", "certFile", "redisUrl", "redisPasswordFile", "defaultRoom"] {
            #expect(throws: ConfigurationError.self) { try configuration.set(key, .string("a\u{0}b"), source: "t") }
            #expect(throws: ConfigurationError.self) { try configuration.set(key, .bool(true), source: "t") }
        }
        do {
            try configuration.set("bind", .array(Array(repeating: .string(String(repeating: "x", count: 1_000)), count: 1_000)), source: "t")
            Issue.record("must fail")
        } catch {
            #expect(error.description.count < 500, "\(error.description.count) characters")
        }
    }

    @Test("a secret is never echoed in an error")
    func secretsAreNotEchoed() {
        var configuration = Configuration()
        do {
            try configuration.set("redisPassword", .array([.string("hunter2-secret")]), source: "t")
            Issue.record("must fail")
        } catch {
            #expect(!error.description.contains("hunter2"), "\(error)")
        }
    }

    @Test("redisPassword and redisPasswordFile together are refused")
    func passwordAndFile() {
        let loader = ConfigurationLoader(overrides: [("redisPassword", .string("a")), ("redisPasswordFile", .string("/run/secrets/redis"))])
        #expect(throws: ConfigurationError.self) { try loader.load() }
    }

    static func withFile(_ bytes: [UInt8], _ body: (String) throws -> Void) throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("herald-bad-\(UUID().uuidString).json").path
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        defer { unlink(path) }
        try body(path)
    }

    @Test("config files: empty, blank, not UTF-8, deeply nested, not an object, truncated, huge numbers: each an error naming the file")
    func badFiles() throws {
        let files: [[UInt8]] = [
            [], Array("   \n".utf8), [0xff, 0xfe, 0x7b, 0x7d], Array(#"{"port": "\#u{0}"}"#.utf8),
            [0x7b, 0x22, 0xc3, 0x28, 0x22, 0x3a, 0x31, 0x7d],  // {"\xc3(":1}
            Array(repeating: UInt8(ascii: "["), count: 100_000), Array(repeating: UInt8(ascii: "{"), count: 100_000),
            Array((String(repeating: #"{"a":"#, count: 50_000)).utf8),
            Array("[]".utf8), Array(#""text""#.utf8), Array("null".utf8), Array("12".utf8),
            Array(#"{"port": "#.utf8), Array(#"{"port": 1e999}"#.utf8), Array(#"{"port": -1e999}"#.utf8),
            Array(#"{"maxLineBytes": 9223372036854775807}"#.utf8), Array(#"{"maxLineBytes": 123456789012345678901234567890}"#.utf8),
            Array(#"{"workers": -1}"#.utf8), Array(#"{"port": NaN}"#.utf8), Array(#"{"port": Infinity}"#.utf8),
            Array(#"{"noSuchKey": 1}"#.utf8), Array(#"{"port": 1, "port": "x"}"#.utf8),
        ]
        for bytes in files {
            try Self.withFile(bytes) { path in
                do {
                    _ = try ConfigurationLoader(configFile: path).load()
                    Issue.record("accepted: \(String(decoding: bytes.prefix(60), as: UTF8.self))")
                } catch {
                    #expect("\(error)".contains(path), "\(error)")
                }
            }
        }
    }

    @Test("a directory, a FIFO or a device as the config file: an error at once, never a hang")
    func notRegularFiles() throws {
        let fifo = FileManager.default.temporaryDirectory.appendingPathComponent("herald-fifo-\(UUID().uuidString)").path
        #expect(mkfifo(fifo, 0o600) == 0)
        defer { unlink(fifo) }
        for path in [FileManager.default.temporaryDirectory.path, fifo, "/dev/zero", "/dev/null"] {
            do {
                _ = try ConfigurationLoader(configFile: path).load()
                Issue.record("accepted \(path)")
            } catch {
                #expect(error.description.contains("not a regular file"), "\(error)")
            }
        }
    }

    @Test("environment variables with bad numbers are errors naming the variable")
    func badEnvironment() {
        let cases: [(String, String)] = [
            ("HERALD_MAX_LINE_BYTES", "9223372036854775807"), ("HERALD_PORT", "NaN"), ("HERALD_PORT", ""),
            ("HERALD_WORKERS", "-1"), ("HERALD_MAX_CONNECTIONS", "1e400"), ("HERALD_KEEP_ALIVE_INTERVAL", "1.5"),
            ("HERALD_REDIS_DATABASE", "99999999999"), ("HERALD_ANNOUNCE_JOIN_LEAVE", "maybe"), ("HERALD_BIND", "a\u{0}b"),
        ]
        for (name, value) in cases {
            do {
                _ = try ConfigurationLoader(environment: [name: value]).load()
                Issue.record("\(name)=\(value) was accepted")
            } catch {
                #expect(error.description.contains(name), "\(error)")
            }
        }
    }
}
