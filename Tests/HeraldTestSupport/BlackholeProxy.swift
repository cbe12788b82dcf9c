import Foundation
import Glibc
import Synchronization

/// A TCP proxy on a free loopback port in front of a Redis, one thread per connection,
/// that can silently swallow the traffic of the connections that subscribed: they stay
/// open but nothing crosses them any more (a subscriber left on a node that hears
/// nothing), or every connection open (a Redis that stopped answering one client). New
/// connections are forwarded normally.
final class BlackholeProxy: Sendable {
    let port: UInt16
    private let target: UInt16
    private let listener: Int32
    private struct State {
        var subscribers: Set<Int32> = []
        var open: Set<Int32> = []
        var frozen: Set<Int32> = []
        var stopped = false
    }
    private let state = Mutex(State())

    init(to target: UInt16) throws {
        self.target = target
        port = try FreePort.pick()
        listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var yes: Int32 = 1
        setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var address = Self.loopback(port)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(listener, 64) == 0 else {
            Glibc.close(listener)
            throw HarnessError.startFailed("proxy: cannot listen on \(port)")
        }
        let thread = Thread { [self] in acceptLoop() }
        thread.start()
    }

    var url: String { "redis://127.0.0.1:\(port)" }

    /// Every connection that has sent a SUBSCRIBE goes silent from now on.
    func freezeSubscribers() {
        state.withLock { $0.frozen.formUnion($0.subscribers) }
    }

    /// Every connection open now goes silent (both ways) from now on; new ones are
    /// forwarded.
    func freezeOpenConnections() {
        state.withLock { $0.frozen.formUnion($0.open) }
    }

    func stop() {
        state.withLock { $0.stopped = true }
        shutdown(listener, Int32(SHUT_RDWR))
    }

    private static func loopback(_ port: UInt16) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return address
    }

    private func acceptLoop() {
        while !state.withLock({ $0.stopped }) {
            let client = accept(listener, nil, nil)
            if client < 0 {
                if errno == EINTR { continue }
                break
            }
            let upstream = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = Self.loopback(target)
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(upstream, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            if connected != 0 {
                Glibc.close(client)
                Glibc.close(upstream)
                continue
            }
            let thread = Thread { [self] in pump(client, upstream) }
            thread.start()
        }
        Glibc.close(listener)
    }

    private func pump(_ client: Int32, _ upstream: Int32) {
        _ = state.withLock { $0.open.insert(client) }
        defer {
            state.withLock {
                $0.subscribers.remove(client)
                $0.open.remove(client)
                $0.frozen.remove(client)
            }
            Glibc.close(client)
            Glibc.close(upstream)
        }
        var buffer = [UInt8](repeating: 0, count: 65_536)
        let needle = Array("SUBSCRIBE".utf8)
        var fds = [pollfd(fd: client, events: Int16(POLLIN), revents: 0), pollfd(fd: upstream, events: Int16(POLLIN), revents: 0)]
        while !state.withLock({ $0.stopped }) {
            let ready = poll(&fds, 2, 200)
            if ready < 0 && errno != EINTR { return }
            if ready <= 0 { continue }
            for index in 0..<2 where fds[index].revents != 0 {
                let from = fds[index].fd, to = fds[1 - index].fd
                let count = read(from, &buffer, buffer.count)
                if count <= 0 { return }
                let frozen = state.withLock { $0.frozen.contains(client) }
                if frozen { continue }  // swallowed
                if index == 0, Self.contains(buffer[0..<count], needle) { _ = state.withLock { $0.subscribers.insert(client) } }
                var sent = 0
                while sent < count {
                    let n = buffer[sent..<count].withUnsafeBytes { write(to, $0.baseAddress, $0.count) }
                    if n <= 0 { return }
                    sent += n
                }
            }
        }
    }

    private static func contains(_ haystack: ArraySlice<UInt8>, _ needle: [UInt8]) -> Bool {
        guard haystack.count >= needle.count else { return false }
        var index = haystack.startIndex
        while index + needle.count <= haystack.endIndex {
            if haystack[index..<(index + needle.count)].elementsEqual(needle) { return true }
            index += 1
        }
        return false
    }
}
