import CHeraldSystem
import Glibc
import HeraldLoop
import HeraldProtocol

/// The CLI's side of the control socket.
public enum ControlClient {
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    /// Sends one command and returns the supervisor's JSON reply. The listener must be a
    /// process of this user (and `expectedPID`, the pidfile's, when given): a socket
    /// someone else put there gets no command.
    public static func send(_ command: String, to path: String, expectedPID: pid_t? = nil,
                            timeoutSeconds: Int = 30) throws(Failure) -> JSON {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "cannot create a socket: \(SystemErrorText.current)") }
        defer { close(fd) }
        var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        guard var address = Sockets.unixAddress(path) else { throw Failure(description: "path too long: \(path)") }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard connected == 0 else {
            throw Failure(description: "cannot reach the supervisor at \(path): \(SystemErrorText.current)")
        }
        var peer = (pid: Int32(0), uid: UInt32(0))
        guard herald_peer_credentials(fd, &peer.pid, &peer.uid) == 0 else {
            throw Failure(description: "cannot check who listens on \(path): \(SystemErrorText.current)")
        }
        guard peer.uid == geteuid() else {
            throw Failure(description: "refusing the control socket \(path): the process listening on it (pid \(peer.pid)) runs as uid \(peer.uid), not as you (uid \(geteuid())). Remove the socket if no herald of yours runs with it.")
        }
        if let expectedPID, peer.pid != expectedPID {
            throw Failure(description: "refusing the control socket \(path): it is served by pid \(peer.pid), not by the supervisor in the pidfile (pid \(expectedPID)). Remove the stale files if no herald of yours runs with them.")
        }
        let line = Array((command + "\n").utf8)
        _ = line.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        var reply: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4_096)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n > 0 { reply.append(contentsOf: buffer[0..<n]); continue }
            if n < 0 && errno == EINTR { continue }
            if n < 0 { throw Failure(description: "no answer from the supervisor: \(SystemErrorText.current)") }
            break
        }
        while reply.last == UInt8(ascii: "\n") { reply.removeLast() }
        do {
            return try JSONParser.parse(reply)
        } catch {
            throw Failure(description: "unreadable answer from the supervisor")
        }
    }
}

enum SystemErrorText {
    static var current: String {
        let error = errno
        return String(decoding: UnsafeRawBufferPointer(start: strerror(error), count: strlen(strerror(error))), as: UTF8.self)
    }
}
