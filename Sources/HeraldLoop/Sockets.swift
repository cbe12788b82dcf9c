import CHeraldSystem
import Glibc

/// Socket set-up and address helpers.
public enum Sockets {
    /// Creates a non-blocking listening TCP socket bound to `host:port`.
    /// `host` is an IPv4 or IPv6 literal or a name; "0.0.0.0" and "::" bind every address.
    /// With `reusePort`, several sockets share the port and the kernel spreads new
    /// connections evenly over them (SO_REUSEPORT). `backlog`: connections the kernel
    /// completes before the worker accepts them; the kernel caps it at
    /// `net.core.somaxconn` (4096 on current Linux). A full queue drops the client's last
    /// handshake packet, and the client, which thinks it is connected, waits for
    /// retransmissions: in a connect storm a deep queue is what keeps clients from stalling.
    public static func listen(host: String, port: Int, backlog: Int32 = 4096, reusePort: Bool = false) throws(SystemError) -> Int32 {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV
        var result: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, String(port), &hints, &result)
        guard status == 0, let first = result else {
            throw SystemError("getaddrinfo(\(host)): \(String(cString: gai_strerror(status)))", errno: EINVAL)
        }
        defer { freeaddrinfo(first) }
        let info = first.pointee
        let fd = socket(info.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        if fd < 0 { throw SystemError("socket") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        if reusePort { setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, socklen_t(MemoryLayout<Int32>.size)) }
        if info.ai_family == AF_INET6 {
            var zero: Int32 = 0
            setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &zero, socklen_t(MemoryLayout<Int32>.size))
        }
        if bind(fd, info.ai_addr, info.ai_addrlen) != 0 {
            let error = SystemError("bind(\(host):\(port))")
            close(fd)
            throw error
        }
        if Glibc.listen(fd, backlog) != 0 {
            let error = SystemError("listen")
            close(fd)
            throw error
        }
        return fd
    }

    /// The local port a socket is bound to.
    public static func localPort(of fd: Int32) -> Int {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { _ = getsockname(fd, $0, &length) }
        }
        return describe(storage).port
    }

    /// The peer's address as text (dotted decimal for IPv4, also when mapped into IPv6) and port.
    public static func describe(_ storage: sockaddr_storage) -> (ip: String, port: Int) {
        var storage = storage
        return withUnsafePointer(to: &storage) { pointer -> (String, Int) in
            switch Int32(pointer.pointee.ss_family) {
            case AF_INET:
                return pointer.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { sin in
                    var addr = sin.pointee.sin_addr
                    return (ipv4Text(&addr), Int(UInt16(bigEndian: sin.pointee.sin_port)))
                }
            case AF_INET6:
                return pointer.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { sin6 in
                    var addr = sin6.pointee.sin6_addr
                    let port = Int(UInt16(bigEndian: sin6.pointee.sin6_port))
                    let isMapped = withUnsafeBytes(of: &addr) { b in
                        b[0..<10].allSatisfy { $0 == 0 } && b[10] == 0xff && b[11] == 0xff
                    }
                    if isMapped {
                        var v4 = in_addr()
                        withUnsafeBytes(of: &addr) { b in
                            withUnsafeMutableBytes(of: &v4) { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: b[12..<16])) }
                        }
                        return (ipv4Text(&v4), port)
                    }
                    var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
                    inet_ntop(AF_INET6, &addr, &text, socklen_t(text.count))
                    return (cText(text), port)
                }
            default:
                return ("unknown", 0)
            }
        }
    }

    private static func ipv4Text(_ addr: inout in_addr) -> String {
        var text = [CChar](repeating: 0, count: Int(INET_ADDRSTRLEN))
        inet_ntop(AF_INET, &addr, &text, socklen_t(text.count))
        return cText(text)
    }

    private static func cText(_ text: [CChar]) -> String {
        let bytes = text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// A unix-socket address for `path`; nil when the path does not fit.
    public static func unixAddress(_ path: String) -> sockaddr_un? {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return nil }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        return address
    }

    public static func setNoDelay(_ fd: Int32) {
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    /// Raises the soft open-files limit to the hard limit.
    public static func raiseOpenFileLimit() {
        var limit = rlimit()
        if getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 && limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max
            setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        }
    }
}
