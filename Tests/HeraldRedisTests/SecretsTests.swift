import Foundation
import Glibc
import HeraldCore
import Testing
@testable import HeraldRedis

/// The Redis password in errors, logs and command lines (issue 9, item 8), and
/// `redisPasswordFile`.
@Suite struct SecretsTests {
    @Test(arguments: [
        ("redis://:hunter2@host:1/2", "redis://:***@host:1/2"),
        ("redis://user:hunter2@host", "redis://user:***@host"),
        ("redis://hunter2@host", "redis://***@host"),
        ("redis://:a@b@host:1", "redis://:***@host:1"),
        ("redis://:pa%40ss@host", "redis://:***@host"),
        ("--redis=redis://:hunter2@h:1", "--redis=redis://:***@h:1"),
        ("redisUrl=redis://:hunter2@h:1", "redisUrl=redis://:***@h:1"),
        ("unix:///r.sock?db=1&password=hunter2", "unix:///r.sock?db=1&password=***"),
        ("unix:///r.sock?password=hunter2&db=1", "unix:///r.sock?password=***&db=1"),
        ("redisPassword=hunter2", "redisPassword=***"),
        ("redisPassword=\"hunter2 with space\"", "redisPassword=***"),
        ("redis://host:1", "redis://host:1"),
        ("redisPasswordFile=/run/secrets/redis", "redisPasswordFile=/run/secrets/redis"),
        ("plain", "plain"),
    ])
    func redactsOneArgument(input: String, expected: String) {
        #expect(Secrets.redact(input, wholeText: true) == expected)
    }

    @Test func redactsInsideText() {
        let text = "herald start: unexpected argument 'redis://:hunter2@h:1' and redis://u:other@x:2 too"
        let redacted = Secrets.redact(text)
        #expect(!redacted.contains("hunter2") && !redacted.contains("other"), "\(redacted)")
        #expect(redacted.contains("redis://:***@h:1") && redacted.contains("redis://u:***@x:2"), "\(redacted)")
    }

    @Test(arguments: ["redis://:hunter2@host:port", "redis://:hunter2@host:99999", "redis://:hunter2@/", "redis://:hunter2@host/x",
                      "unix://relative?password=hunter2", "unix:///s?password=hunter2&color=red", "http://:hunter2@h",
                      "redis://:hunter2 with spaces@host:x"])
    func parseErrorsHideThePassword(url: String) {
        do {
            _ = try RedisEndpoint.parse(url: url)
            Issue.record("must fail: \(url)")
        } catch {
            #expect(!error.description.contains("hunter2"), "\(error.description)")
            #expect(error.description.contains("***"), "\(error.description)")
        }
    }

    static func withPasswordFile(_ contents: [UInt8], _ body: (String) throws -> Void) throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("herald-pw-\(UUID().uuidString)").path
        try Data(contents).write(to: URL(fileURLWithPath: path))
        defer { unlink(path) }
        try body(path)
    }

    @Test func passwordFile() throws {
        try Self.withPasswordFile(Array("s3cret\n".utf8)) { path throws in
            var configuration = Configuration()
            configuration.redisUrl = "redis://:fromurl@h:1"
            configuration.redisPasswordFile = path
            #expect(try RedisEndpoint.from(configuration)?.password == "s3cret", "the file wins over the URL's password")
        }
        try Self.withPasswordFile(Array("with space\r\n".utf8)) { path throws in
            #expect(try Secrets.readPasswordFile(path) == "with space")
        }
    }

    @Test func passwordFileErrorsNameTheFileNotItsContents() throws {
        func failure(_ path: String) -> String {
            do {
                _ = try Secrets.readPasswordFile(path)
                return ""
            } catch {
                return error.description
            }
        }
        #expect(failure("/nonexistent/herald-pw").contains("No such file"))
        #expect(failure("/nonexistent/herald-pw").contains("redisPasswordFile /nonexistent/herald-pw"))
        #expect(failure("/tmp").contains("not a regular file"))
        #expect(failure("/dev/zero").contains("not a regular file"))
        try Self.withPasswordFile([]) { #expect(failure($0).contains("empty")) }
        try Self.withPasswordFile(Array("\n\n".utf8)) { #expect(failure($0).contains("empty")) }
        try Self.withPasswordFile(Array("two\nlines-hunter2".utf8)) {
            let text = failure($0)
            #expect(text.contains("one line") && !text.contains("hunter2"), "\(text)")
        }
        try Self.withPasswordFile(Array(repeating: UInt8(ascii: "x"), count: 5_000)) { #expect(failure($0).contains("larger than")) }
        let fifo = FileManager.default.temporaryDirectory.appendingPathComponent("herald-pw-fifo-\(UUID().uuidString)").path
        #expect(mkfifo(fifo, 0o600) == 0)
        defer { unlink(fifo) }
        #expect(failure(fifo).contains("not a regular file"), "a FIFO fails at once")
        if geteuid() != 0 {  // root reads any file
            try Self.withPasswordFile(Array("x".utf8)) { path in
                chmod(path, 0)
                #expect(failure(path).contains("Permission denied"))
            }
        }
    }
}
