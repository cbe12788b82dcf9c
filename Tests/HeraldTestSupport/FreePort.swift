import Foundation
import Glibc

/// Free loopback TCP ports for the servers the tests start.
/// The ports handed out, behind a lock. (Not a `Mutex` in a static: ThreadSanitizer reports
/// its `withLock` on a global as a Swift access race between test threads.)
private final class PortSet: @unchecked Sendable {
    private let lock = NSLock()
    private var ports = Set<UInt16>()

    func insert(_ port: UInt16) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        return ports.insert(port).inserted
    }
}

enum FreePort {
    /// Ports this test process has handed out: never handed out twice, so two tests
    /// running in parallel cannot be given the same port (one test's client would then
    /// talk to the other's server: a TLS client meeting a plain port, seen in CI).
    private static let handedOut = PortSet()

    /// A port the kernel reports free that this process has not handed out before.
    /// Another process may take the port before herald binds it; `HeraldProcess.start`
    /// retries with a fresh port when herald exits early.
    static func pick() throws -> UInt16 {
        for _ in 0..<64 {
            let port = try pickFromKernel()
            if handedOut.insert(port) { return port }
        }
        throw HarnessError.system("no fresh free port after 64 tries", EADDRINUSE)
    }

    /// Binds 127.0.0.1:0, reads the port the kernel chose and closes the socket.
    private static func pickFromKernel() throws -> UInt16 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw HarnessError.system("socket", errno) }
        defer { close(fd) }
        var addr = sockaddr_in.loopback(port: 0)
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0 else { throw HarnessError.system("bind 127.0.0.1:0", errno) }
        var out = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let named = withUnsafeMutablePointer(to: &out) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        guard named == 0 else { throw HarnessError.system("getsockname", errno) }
        return UInt16(bigEndian: out.sin_port)
    }

    /// True when something accepts TCP connections on 127.0.0.1:`port` right now.
    static func isAccepting(_ port: UInt16) -> Bool {
        guard let client = try? LineClient(port: port, connectTimeout: 1) else { return false }
        client.close()
        return true
    }
}

extension sockaddr_in {
    static func loopback(port: UInt16) -> sockaddr_in {
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = port.bigEndian
        addr.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        return addr
    }
}
