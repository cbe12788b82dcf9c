import Foundation
import Glibc
import Synchronization

/// A stand-in sentinel on a free loopback port that names whatever node the test says
/// (`SENTINEL get-master-addr-by-name` → `127.0.0.1:<masterPort>`), answers PING, and
/// confirms SUBSCRIBE; one thread per connection. For what a real sentinel will not do
/// on cue: name a node that is not a master.
final class FakeSentinel: Sendable {
    let port: UInt16
    private let listener: Int32
    private let named = Mutex<UInt16>(0)
    private let stopped = Mutex(false)
    /// Microseconds each answer to SENTINEL or CLUSTER waits (a slow sentinel; a slow,
    /// unhelpful cluster seed: it refuses CLUSTER, after the wait).
    private let answerDelay: UInt32

    init(naming masterPort: UInt16, answerDelay: Double = 0) throws {
        named.withLock { $0 = masterPort }
        self.answerDelay = UInt32(answerDelay * 1_000_000)
        port = try FreePort.pick()
        listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var yes: Int32 = 1
        setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(listener, 64) == 0 else {
            Glibc.close(listener)
            throw HarnessError.startFailed("fake sentinel: cannot listen on \(port)")
        }
        Thread { [self] in
            while !stopped.withLock({ $0 }) {
                let client = accept(listener, nil, nil)
                if client < 0 { if errno == EINTR { continue } else { break } }
                Thread { [self] in serve(client) }.start()
            }
            Glibc.close(listener)
        }.start()
    }

    var url: String { "redis-sentinel://127.0.0.1:\(port)#mymaster" }

    func stop() {
        stopped.withLock { $0 = true }
        shutdown(listener, Int32(SHUT_RDWR))
    }

    private func serve(_ fd: Int32) {
        defer { Glibc.close(fd) }
        var input: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4_096)
        var timeout = timeval(tv_sec: 0, tv_usec: 200_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        while !stopped.withLock({ $0 }) {
            let count = read(fd, &chunk, chunk.count)
            if count == 0 { return }
            if count < 0 { if errno == EAGAIN || errno == EINTR { continue } else { return } }
            input.append(contentsOf: chunk[0..<count])
            while let (command, used) = Self.parse(input) {
                input.removeFirst(used)
                let reply = answer(command)
                _ = reply.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            }
        }
    }

    private func answer(_ command: [String]) -> [UInt8] {
        func bulk(_ text: String) -> String { "$\(text.utf8.count)\r\n\(text)\r\n" }
        switch command.first?.uppercased() {
        case "PING": return Array("+PONG\r\n".utf8)
        case "SENTINEL":
            if answerDelay > 0 { usleep(answerDelay) }
            let port = String(named.withLock { $0 })
            return Array(("*2\r\n" + bulk("127.0.0.1") + bulk(port)).utf8)
        case "CLUSTER":
            if answerDelay > 0 { usleep(answerDelay) }
            return Array("-ERR unknown command 'CLUSTER'\r\n".utf8)
        case "SUBSCRIBE": return Array(("*3\r\n" + bulk("subscribe") + bulk(command.count > 1 ? command[1] : "") + ":1\r\n").utf8)
        default: return Array("-ERR unknown command\r\n".utf8)
        }
    }

    /// One RESP array of bulk strings from the start of `bytes`, and its length.
    private static func parse(_ bytes: [UInt8]) -> ([String], Int)? {
        var index = 0
        func line() -> String? {
            var end = index
            while end + 1 < bytes.count, !(bytes[end] == 13 && bytes[end + 1] == 10) { end += 1 }
            guard end + 1 < bytes.count else { return nil }
            let text = String(decoding: bytes[index..<end], as: UTF8.self)
            index = end + 2
            return text
        }
        guard let head = line(), head.hasPrefix("*"), let count = Int(head.dropFirst()) else { return nil }
        var items: [String] = []
        for _ in 0..<count {
            guard let size = line(), size.hasPrefix("$"), let length = Int(size.dropFirst()),
                  index + length + 2 <= bytes.count else { return nil }
            items.append(String(decoding: bytes[index..<(index + length)], as: UTF8.self))
            index += length + 2
        }
        return (items, index)
    }
}
