import Foundation
import Glibc
import HeraldClient
import Testing

/// The plain TCP transport under `shutdown` and `close` from several threads at once
/// (issue 9, item 12): the descriptor is closed exactly once, never while a call uses
/// it, and a blocked read is woken.
@Suite("TCP transport: shutdown and close from several threads", .serialized)
struct TransportTests {
    /// A listening socket on a free loopback port.
    final class Listener: @unchecked Sendable {
        let fd: Int32
        let port: Int

        init() throws {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            address.sin_port = 0
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            let bound = withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                    bind(fd, pointer, length) == 0 && listen(fd, 512) == 0 && getsockname(fd, pointer, &length) == 0
                }
            }
            guard bound else {
                Glibc.close(fd)
                throw HarnessFailure("cannot listen on 127.0.0.1")
            }
            self.fd = fd
            port = Int(UInt16(bigEndian: address.sin_port))
        }

        func accept() -> Int32 { Glibc.accept(fd, nil, nil) }

        deinit { Glibc.close(fd) }
    }

    static func isOpen(_ fd: Int32) -> Bool { fcntl(fd, F_GETFD) >= 0 }

    @Test("a second close after the descriptor's number was reused leaves the new file open")
    func closeIsIdempotent() throws {
        let listener = try Listener()
        let transport = try TCPTransport.connect(host: "127.0.0.1", port: listener.port, timeout: .seconds(2))
        let server = listener.accept()
        defer { close(server) }
        let number = transport.fd
        transport.close()
        // Give `number` to a new file: the lowest free number at or above it is it,
        // unless a test running in parallel took it first (then nothing is checked).
        var fds: [Int32] = [-1, -1]
        try #require(pipe(&fds) == 0)
        let reused = fcntl(fds[0], F_DUPFD_CLOEXEC, number)
        var pipeFDs = fds + [reused]
        defer { for fd in pipeFDs where fd >= 0 { close(fd) } }
        guard pipeFDs.contains(number) else { return }
        pipeFDs = pipeFDs.filter { $0 >= 0 }
        transport.close()
        transport.shutdown()
        #expect(pipeFDs.allSatisfy(Self.isOpen), "close or shutdown reached a file the transport no longer owns")
        var buffer = [UInt8](repeating: 0, count: 8)
        #expect(throws: HeraldTransportError.self) {
            _ = try buffer.withUnsafeMutableBytes { try transport.read(into: $0) }
        }
    }

    @Test("300 rounds: a blocked read, then close and shutdown from four threads at once, files opened meanwhile survive")
    func concurrentCloseWhileReading() throws {
        let listener = try Listener()
        for round in 0..<300 {
            let transport = try TCPTransport.connect(host: "127.0.0.1", port: listener.port, timeout: .seconds(2))
            let server = listener.accept()
            defer { close(server) }
            let readerDone = DispatchSemaphore(value: 0)
            let reading = DispatchSemaphore(value: 0)
            Thread.detachNewThread {
                var buffer = [UInt8](repeating: 0, count: 64)
                reading.signal()
                while true {
                    let n = (try? buffer.withUnsafeMutableBytes { try transport.read(into: $0) }) ?? 0
                    if n <= 0 { break }
                }
                readerDone.signal()
            }
            reading.wait()
            if round % 2 == 0 { usleep(200) }  // half the rounds: the read is blocked in recv
            let opened = Locked<[Int32]>([])
            DispatchQueue.concurrentPerform(iterations: 5) { index in
                switch index {
                case 4:
                    // Opens files while the others close: a number freed too early (or
                    // closed twice) would be one of these.
                    for _ in 0..<4 {
                        var fds: [Int32] = [-1, -1]
                        if pipe(&fds) == 0 { opened.withLock { $0 += fds } }
                    }
                case let n where n % 2 == 0: transport.close()
                default: transport.shutdown()
                }
            }
            let woke = readerDone.wait(timeout: .now() + 2) == .success
            #expect(woke, "round \(round): the blocked read was not woken by close/shutdown")
            transport.close()
            let fds = opened.withLock { $0 }
            let lost = fds.filter { !Self.isOpen($0) }
            #expect(lost.isEmpty, "round \(round): files \(lost) were closed by the transport")
            for fd in fds { close(fd) }
            if !woke || !lost.isEmpty { break }
        }
    }
}
