import Foundation
import Glibc
import Testing

/// PROTOCOL.md §7: the `file` verb serves raw bytes from publicDir, and nothing outside it.
@Suite("§7 Files")
struct FileTests {
    static let hello = Array("Hello from the public directory.".utf8)
    static let binary: [UInt8] = (0..<(100 * 1024)).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 8) }

    /// A working directory with public/ (hello.txt, data.bin, sub/nested.txt, a
    /// directory, symlinks in and out) and a secret file beside public/.
    static func layout(publicDir: String = "public") -> HeraldOptions {
        var options = HeraldOptions(publicDir == "public" ? [] : [("publicDir", publicDir)])
        options.prepare = { dir in
            let pub = publicDir.hasPrefix("/") ? URL(fileURLWithPath: publicDir) : dir.appendingPathComponent(publicDir)
            let fm = FileManager.default
            try fm.createDirectory(at: pub.appendingPathComponent("sub/deeper"), withIntermediateDirectories: true)
            try Data(hello).write(to: pub.appendingPathComponent("hello.txt"))
            try Data(binary).write(to: pub.appendingPathComponent("data.bin"))
            try Data("nested\r\nfile\n".utf8).write(to: pub.appendingPathComponent("sub/nested.txt"))
            try Data("outside!".utf8).write(to: dir.appendingPathComponent("secret.txt"))
            try fm.createSymbolicLink(atPath: pub.appendingPathComponent("escape.txt").path,
                                      withDestinationPath: dir.appendingPathComponent("secret.txt").path)
            try fm.createSymbolicLink(atPath: pub.appendingPathComponent("escape-relative.txt").path,
                                      withDestinationPath: "../secret.txt")
            try fm.createSymbolicLink(atPath: pub.appendingPathComponent("escape-dir").path,
                                      withDestinationPath: dir.path)
        }
        return options
    }

    static func notFound(_ path: String, _ n: Int) -> String {
        #"{"error":"Error: That file is not found ("# + path + #")","context":"response","messageCount":\#(n)}"#
    }

    @Test("file serves the bytes raw: no JSON, no delimiter; the next reply follows directly")
    func servesRawBytes() throws {
        try withHerald(Self.layout()) { h in
            let (c, _) = try h.connectWelcomed()
            try c.send("file hello.txt")
            let body = try c.readRaw(count: Self.hello.count)
            try check(body == Self.hello, "file body differs: \(describe(body))")
            try c.roundTrip("randomNumber", #"{"randomNumber":<NUM>,"context":"response","messageCount":2}"#)
            try c.send("file sub/nested.txt")
            let nested = try c.readRaw(count: 13)
            try check(nested == Array("nested\r\nfile\n".utf8), "nested file differs: \(describe(nested))")
            try c.roundTrip("paramsView", #"{"status":"OK","context":"response","data":{"action":"randomNumber"},"messageCount":4}"#)
        }
    }

    @Test("binary files are served byte for byte")
    func servesBinary() throws {
        try withHerald(Self.layout()) { h in
            let (c, _) = try h.connectWelcomed()
            try c.send("file data.bin")
            let body = try c.readRaw(count: Self.binary.count, timeout: 10)
            try check(body == Self.binary, "the 100 KB binary file differs")
            try c.roundTrip("randomNumber", #"{"randomNumber":<NUM>,"context":"response","messageCount":2}"#)
        }
    }

    @Test("file with no path uses the sticky param file")
    func stickyFileParam() throws {
        try withHerald(Self.layout()) { h in
            let (c, _) = try h.connectWelcomed()
            try c.roundTrip("paramAdd file=hello.txt", #"{"status":"OK","context":"response","data":null,"messageCount":1}"#)
            try c.send("file")
            try check(try c.readRaw(count: Self.hello.count) == Self.hello, "the sticky file param must be served")
            try c.roundTrip("randomNumber", #"{"randomNumber":<NUM>,"context":"response","messageCount":3}"#)
        }
    }

    @Test("not found, no path, a directory: the not-found error reply")
    func notFound() throws {
        try withHerald(Self.layout()) { h in
            let (c, _) = try h.connectWelcomed()
            try c.roundTrip("file missing.txt", Self.notFound("missing.txt", 1))
            try c.roundTrip("file sub/missing.txt", Self.notFound("sub/missing.txt", 2))
            try c.roundTrip("file sub", Self.notFound("sub", 3))
            try c.roundTrip("file", Self.notFound("<STR>", 4))
            try c.roundTrip("randomNumber", #"{"randomNumber":<NUM>,"context":"response","messageCount":5}"#)
        }
    }

    @Test("paths escaping publicDir are never served", arguments: [
        "../secret.txt", "sub/../../secret.txt", "sub/deeper/../../../secret.txt", "./../secret.txt",
        "escape.txt", "escape-relative.txt", "escape-dir/secret.txt",
    ])
    func escapes(path: String) throws {
        try withHerald(Self.layout()) { h in
            let (c, _) = try h.connectWelcomed()
            try c.roundTrip("file \(path)", Self.notFound(path, 1))
            try c.roundTrip("randomNumber", #"{"randomNumber":<NUM>,"context":"response","messageCount":2}"#)
        }
    }

    @Test("absolute paths are never served")
    func absolutePaths() throws {
        try withHerald(Self.layout()) { h in
            let (c, _) = try h.connectWelcomed()
            let secret = h.directory.appendingPathComponent("secret.txt").path
            let inside = h.directory.appendingPathComponent("public/hello.txt").path
            try c.roundTrip("file /etc/passwd", Self.notFound("/etc/passwd", 1))
            try c.roundTrip("file \(secret)", Self.notFound(secret, 2))
            try c.roundTrip("file \(inside)", Self.notFound(inside, 3))
        }
    }

    @Test("publicDir is configurable (relative to the working directory, or absolute)")
    func configuredPublicDir() throws {
        try withHerald(Self.layout(publicDir: "static/www")) { h in
            let (c, _) = try h.connectWelcomed()
            try c.send("file hello.txt")
            try check(try c.readRaw(count: Self.hello.count) == Self.hello, "must serve from static/www")
        }
        let absolute = try makeTempDir("herald-itest-www")
        defer { try? FileManager.default.removeItem(at: absolute) }
        try withHerald(Self.layout(publicDir: absolute.path)) { h in
            let (c, _) = try h.connectWelcomed()
            try c.send("file data.bin")
            try check(try c.readRaw(count: Self.binary.count, timeout: 10) == Self.binary, "must serve from the absolute publicDir")
        }
    }
}
