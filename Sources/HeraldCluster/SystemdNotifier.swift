import CHeraldSystem
import Glibc
import HeraldLoop

/// systemd's notify protocol (`Type=notify`) without libsystemd: datagrams of
/// `KEY=value` lines to the unix socket named by `NOTIFY_SOCKET` (a path, or an
/// abstract-namespace name written with a leading '@').
public final class SystemdNotifier: Sendable {
    /// The socket as NOTIFY_SOCKET named it (passed on to the new supervisor of an upgrade).
    public let socketPath: String
    private let fd: Int32
    private let address: sockaddr_un
    private let addressLength: socklen_t

    /// The notifier for `NOTIFY_SOCKET`, or nil when it is not set (not started by
    /// systemd). The variable is removed from the environment, so that no child (worker,
    /// private redis-server) inherits it and notifies in the supervisor's place.
    public static func takeFromEnvironment() -> SystemdNotifier? {
        guard let value = getenv("NOTIFY_SOCKET").map({ String(cString: $0) }) else { return nil }
        unsetenv("NOTIFY_SOCKET")
        return SystemdNotifier(socket: value)
    }

    /// nil when `socket` is not a usable address.
    public init?(socket path: String) {
        socketPath = path
        var bytes = Array(path.utf8)
        guard bytes.count >= 2, bytes[0] == UInt8(ascii: "/") || bytes[0] == UInt8(ascii: "@") else { return nil }
        var address = sockaddr_un()
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        let abstract = bytes[0] == UInt8(ascii: "@")
        if abstract { bytes[0] = 0 }
        guard bytes.count < capacity else { return nil }
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
        }
        let pathOffset = MemoryLayout<sockaddr_un>.offset(of: \.sun_path)!
        // An abstract name is exactly its bytes (no terminating NUL); a path has one.
        self.addressLength = socklen_t(pathOffset + bytes.count + (abstract ? 0 : 1))
        self.address = address
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return nil }
        self.fd = fd
    }

    deinit { close(fd) }

    /// Sends one message (`READY=1`, `STATUS=…`, lines joined by newlines); false when
    /// it could not be sent. Never blocks.
    @discardableResult
    public func send(_ message: String) -> Bool {
        var address = self.address
        let bytes = Array(message.utf8)
        let sent = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { socketAddress in
                bytes.withUnsafeBytes { sendto(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT | MSG_NOSIGNAL), socketAddress, addressLength) }
            }
        }
        return sent == bytes.count
    }

    /// The message for a supervisor milestone.
    public static func message(for milestone: Supervisor.Milestone, workers: Int) -> String {
        switch milestone {
        case .serving: return "READY=1\nSTATUS=\(workers) workers serving"
        case .reloading:
            // systemd 253+ wants the CLOCK_MONOTONIC time of the reload's start with it.
            return "RELOADING=1\nMONOTONIC_USEC=\(Clock.monotonicNanos() / 1_000)\nSTATUS=reloading"
        case .reloaded(nil): return "READY=1\nSTATUS=\(workers) workers serving (reloaded)"
        case .reloaded(let failure?): return "READY=1\nSTATUS=\(workers) workers serving; the last reload failed: \(failure)"
        case .upgrading:
            return "RELOADING=1\nMONOTONIC_USEC=\(Clock.monotonicNanos() / 1_000)\nSTATUS=upgrading to the binary on disk"
        case .upgraded(let failure):
            return "READY=1\nSTATUS=\(workers) workers serving; the last upgrade failed: \(failure)"
        case .stopping: return "STOPPING=1\nSTATUS=stopping"
        }
    }
}
