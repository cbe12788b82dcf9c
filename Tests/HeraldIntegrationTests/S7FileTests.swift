import Foundation
import Glibc
import Testing
@testable import HeraldTestSupport

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
            // Symlinks that stay inside: still never followed.
            try fm.createSymbolicLink(atPath: pub.appendingPathComponent("link.txt").path, withDestinationPath: "hello.txt")
            try fm.createSymbolicLink(atPath: pub.appendingPathComponent("linked-sub").path, withDestinationPath: "sub")
            guard mkfifo(pub.appendingPathComponent("fifo").path, 0o644) == 0 else { throw HarnessError.system("mkfifo", errno) }
        }
        return options
    }

    /// 15 MiB of varied bytes.
    static let big: [UInt8] = {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        return [UInt8](unsafeUninitializedCapacity: 15 << 20) { bytes, count in
            for i in 0..<bytes.count {
                state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                bytes[i] = UInt8(truncatingIfNeeded: state >> 56)
            }
            count = bytes.count
        }
    }()

    /// The layout plus big.bin (15 MiB).
    static func layoutWithBigFile() -> HeraldOptions {
        var options = layout()
        let prepare = options.prepare
        options.prepare = { dir in
            try prepare?(dir)
            let path = dir.appendingPathComponent("public/big.bin").path
            try Data(big).write(to: URL(fileURLWithPath: path))
            // Out of the page cache, so that serving it waits for the disk at first.
            let fd = open(path, O_RDONLY)
            if fd >= 0 {
                fsync(fd)
                _ = posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED)
                close(fd)
            }
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

    @Test("symlinks are never followed (even inside publicDir); a FIFO, a NUL byte, a trailing slash are not found")
    func notFollowedNotRegular() throws {
        try withHerald(Self.layout()) { h in
            let (c, _) = try h.connectWelcomed()
            try c.roundTrip("file link.txt", Self.notFound("link.txt", 1))
            try c.roundTrip("file linked-sub/nested.txt", Self.notFound("linked-sub/nested.txt", 2))
            try c.roundTrip("file fifo", Self.notFound("fifo", 3))  // and the worker did not block opening it
            try c.send("file hello.txt\u{0}zzz")
            try expectLine(try c.readLine(), Self.notFound(#"hello.txt\u0000zzz"#, 4))
            try c.roundTrip("file hello.txt/", Self.notFound("hello.txt/", 5))
            try c.roundTrip("file sub//nested.txt/", Self.notFound("sub//nested.txt/", 6))
            try c.send("file ./sub//nested.txt")
            try check(try c.readRaw(count: 13) == Array("nested\r\nfile\n".utf8), "./sub//nested.txt is sub/nested.txt")
            try c.roundTrip("randomNumber", #"{"randomNumber":<NUM>,"context":"response","messageCount":8}"#)
        }
    }

    @Test("a 15 MiB file arrives byte-exact; pipelined requests after it are answered after its bytes, in order")
    func largeFilePipelined() throws {
        try withHerald(Self.layoutWithBigFile()) { h in
            let (c, _) = try h.connectWelcomed()
            try c.sendRaw("file big.bin\r\nrandomNumber\r\nfile hello.txt\r\nfile missing\r\nfile big.bin\r\nparamsView\r\n")
            let first = try c.readRaw(count: Self.big.count, timeout: 20)
            try check(first == Self.big, "the first copy of big.bin differs")
            try c.expect(#"{"randomNumber":<NUM>,"context":"response","messageCount":2}"#)
            try check(try c.readRaw(count: Self.hello.count) == Self.hello, "hello.txt must follow the randomNumber reply")
            try c.expect(Self.notFound("missing", 4))
            let second = try c.readRaw(count: Self.big.count, timeout: 20)
            try check(second == Self.big, "the second copy of big.bin differs")
            try c.expect(#"{"status":"OK","context":"response","data":{"action":"randomNumber"},"messageCount":6}"#)
        }
    }

    @Test("eleven clients that do not read a 15 MiB file do not grow the worker; closing mid-file closes the file")
    func nonReadingClients() throws {
        try withHerald(Self.layoutWithBigFile()) { h in
            let worker = try WorkerProbe.worker(of: h)
            let (probe, _) = try h.connectWelcomed()
            try probe.roundTrip("randomNumber", #"{"randomNumber":<NUM>,"context":"response","messageCount":1}"#)
            let baseRSS = WorkerProbe.rss(worker)
            let baseFDs = WorkerProbe.openFDs(worker)
            var clients: [LineClient] = []
            for _ in 0..<11 {
                let (client, _) = try h.connectWelcomed()
                try client.send("file big.bin")
                clients.append(client)
            }
            usleep(500_000)
            // The worker serves others meanwhile.
            try probe.roundTrip("randomNumber", #"{"randomNumber":<NUM>,"context":"response","messageCount":2}"#)
            let grown = WorkerProbe.rss(worker) - baseRSS
            try check(grown < 20_000_000, "eleven stalled 15 MiB downloads grew the worker by \(grown) bytes")
            // One socket and one open file each.
            try check(WorkerProbe.openFDs(worker) == baseFDs + 22, "expected 22 more fds: \(baseFDs) → \(WorkerProbe.openFDs(worker))")
            for (i, client) in clients.enumerated() { if i % 2 == 0 { client.close() } else { client.resetClose() } }
            let closed = WorkerProbe.eventually(3) { WorkerProbe.openFDs(worker) == baseFDs }
            try check(closed, "the files must be closed with their connections: \(baseFDs) → \(WorkerProbe.openFDs(worker))")
            try probe.roundTrip("randomNumber", #"{"randomNumber":<NUM>,"context":"response","messageCount":3}"#)
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
