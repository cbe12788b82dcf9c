import Foundation
import Glibc
import Testing
@testable import HeraldRedis

/// `RedisSlots` against Redis's own `CLUSTER KEYSLOT`, on a live cluster-enabled
/// redis-server (no slots need be assigned for KEYSLOT), for a thousand keys with and
/// without hash tags.
@Suite struct RedisKeyslotLiveTests {
    @Test func thousandKeysMatchClusterKeyslot() throws {
        guard access("/usr/bin/redis-server", X_OK) == 0, access("/usr/bin/redis-cli", X_OK) == 0 else { return }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("herald-keyslot-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        // A port the kernel picks for a moment; redis-server binds it right after.
        let port = try Self.freePort()
        let server = Process()
        server.executableURL = URL(fileURLWithPath: "/usr/bin/redis-server")
        // (Its own cluster bus port: the default, port + 10000, may be taken or past 65535.)
        server.arguments = ["--port", String(port), "--cluster-port", String(try Self.freePort()),
                            "--bind", "127.0.0.1", "--cluster-enabled", "yes",
                            "--cluster-config-file", directory.appendingPathComponent("nodes.conf").path,
                            "--save", "", "--appendonly", "no", "--dir", directory.path]
        server.standardOutput = FileHandle.nullDevice
        try server.run()
        defer {
            kill(server.processIdentifier, SIGKILL)
            server.waitUntilExit()
        }
        var random = SystemRandomNumberGenerator()
        let alphabet = Array("abcxyz019:_-{}".utf8)
        var keys = ["{herald:}rooms", "herald:room:lobby", "{}", "{a}", "a{", "}{b}"]
        while keys.count < 1_000 {
            let length = Int.random(in: 1...24, using: &random)
            keys.append(String(decoding: (0..<length).map { _ in alphabet.randomElement(using: &random)! }, as: UTF8.self))
        }
        var answers: [String] = []
        for _ in 0..<50 {
            answers = try Self.keyslots(keys, port: port)
            if answers.count == keys.count { break }
            usleep(50_000)  // (still starting)
        }
        try #require(answers.count == keys.count, "redis-cli answered \(answers.prefix(3))")
        for (key, answer) in zip(keys, answers) {
            #expect(Int(answer) == RedisSlots.slot(of: key), "CLUSTER KEYSLOT \(key)")
        }
    }

    /// One redis-cli, the commands on its stdin (keys have no spaces or quotes).
    static func keyslots(_ keys: [String], port: UInt16) throws -> [String] {
        let cli = Process()
        cli.executableURL = URL(fileURLWithPath: "/usr/bin/redis-cli")
        cli.arguments = ["-p", String(port)]
        let input = Pipe(), output = Pipe()
        cli.standardInput = input
        cli.standardOutput = output
        cli.standardError = FileHandle.nullDevice
        try cli.run()
        input.fileHandleForWriting.write(Data(keys.map { "CLUSTER KEYSLOT \($0)\n" }.joined().utf8))
        try input.fileHandleForWriting.close()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        cli.waitUntilExit()
        return String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init)
            .filter { Int($0) != nil }
    }

    static func freePort() throws -> UInt16 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        return UInt16(bigEndian: address.sin_port)
    }
}
