import CHeraldSystem
import Glibc
import HeraldLoop
import HeraldProtocol

/// The supervisor's control socket: a unix socket (mode 0600) taking one command line
/// per connection — `status`, `reload`, `stop`, `scale N`, `upgrade` — and answering one
/// JSON line, at once or (`--wait`) once the command has finished (`ControlReply`).
@LoopActor
public final class ControlServer: EventHandler {
    public let path: String
    private let fd: Int32
    private let handle: @LoopActor ([Substring], ControlReply) -> Void

    public convenience init(path: String, handle: @escaping @LoopActor ([Substring]) -> JSON) throws(SystemError) {
        try self.init(path: path, answer: { words, reply in reply.send(handle(words)) })
    }

    /// `answer` gets each command with the reply to send, now or later.
    public init(path: String, answer: @escaping @LoopActor ([Substring], ControlReply) -> Void) throws(SystemError) {
        self.path = path
        self.handle = answer
        // Only a leftover socket of this user's is removed (RunFiles.check has refused
        // anything else already; this closes the gap since).
        var info = stat()
        if lstat(path, &info) == 0 {
            guard info.st_mode & S_IFMT == S_IFSOCK, info.st_uid == geteuid() else {
                throw SystemError("control socket \(path) is not this user's socket; remove it", errno: EEXIST)
            }
            unlink(path)
        }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        if fd < 0 { throw SystemError("socket(AF_UNIX)") }
        guard var address = Sockets.unixAddress(path) else {
            Glibc.close(fd)
            throw SystemError("control socket path too long: \(path)", errno: ENAMETOOLONG)
        }
        let previousMask = umask(0o177)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        umask(previousMask)
        guard bound == 0, listen(fd, 16) == 0 else {
            let error = SystemError("bind(\(path))")
            Glibc.close(fd)
            throw error
        }
        self.fd = fd
        try EventLoop.current.register(fd: fd, events: IOEvents.readable, handler: self)
    }

    public func handleEvents(_ events: UInt32) {
        while true {
            var address = sockaddr_storage()
            var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let client = herald_accept(fd, &address, &length)
            if client < 0 { return }
            do {
                try EventLoop.current.register(fd: client, events: IOEvents.readable | IOEvents.readHangUp,
                                               handler: ControlSession(fd: client, handle: handle))
            } catch {
                Glibc.close(client)
            }
        }
    }

    /// Closes the socket; `unlinking: false` leaves the path to the new supervisor that
    /// took it over in a binary upgrade.
    public func close(unlinking: Bool = true) {
        EventLoop.current.unregister(fd: fd)
        Glibc.close(fd)
        if unlinking { unlink(path) }
    }
}

/// One CLI connection to the control socket.
@LoopActor
private final class ControlSession: EventHandler {
    let fd: Int32
    let handle: @LoopActor ([Substring], ControlReply) -> Void
    var input: [UInt8] = []

    init(fd: Int32, handle: @escaping @LoopActor ([Substring], ControlReply) -> Void) {
        self.fd = fd
        self.handle = handle
    }

    func handleEvents(_ events: UInt32) {
        var buffer = [UInt8](repeating: 0, count: 1_024)
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 && (errno == EAGAIN || errno == EINTR) { return }
        if n > 0 { input.append(contentsOf: buffer[0..<n]) }
        guard let newline = input.firstIndex(of: UInt8(ascii: "\n")) else {
            if n <= 0 || input.count > 4_096 {
                EventLoop.current.unregister(fd: fd)
                close(fd)
            }
            return
        }
        let line = String(decoding: input[..<newline], as: UTF8.self)
        // Nothing more is read: the reply may come later (`--wait`).
        EventLoop.current.unregister(fd: fd)
        handle(line.split(separator: " "), ControlReply(fd: fd))
    }
}

/// The answer to one control command, sent once (now, or when a waited-for command has
/// finished); the connection closes with it.
@LoopActor
public final class ControlReply {
    private var fd: Int32

    init(fd: Int32) { self.fd = fd }

    public var isSent: Bool { fd < 0 }

    public func send(_ reply: JSON) {
        guard fd >= 0 else { return }
        var out: [UInt8] = []
        JSONWriter.write(reply, to: &out)
        out.append(UInt8(ascii: "\n"))
        // The reply is small: a blocking write of it is fine on a local socket.
        let flags = fcntl(fd, F_GETFL)
        _ = fcntl(fd, F_SETFL, flags & ~O_NONBLOCK)
        _ = out.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        close(fd)
        fd = -1
    }

    /// `{"ok":true, …}` or `{"ok":false,"error":…}`.
    public func send(error: String?, _ fields: [(String, JSON)] = []) {
        if let error { send(.object(JSONObject([("ok", .bool(false)), ("error", .string(error))] + fields))) } else {
            send(.object(JSONObject([("ok", .bool(true))] + fields)))
        }
    }

    deinit {
        // A command that never got its answer (the supervisor gave up on it).
        if fd >= 0 { close(fd) }
    }
}
