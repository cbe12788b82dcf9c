import CHeraldSystem
import Glibc
import HeraldLoop

/// A private `redis-server` child on a unix socket, for a Herald started without any
/// Redis configured. It saves nothing to disk (`--save '' --appendonly no`) and dies
/// with its parent: it is spawned through `herald __exec-child`, which sets the
/// parent-death signal (PR_SET_PDEATHSIG) and then execs redis-server.
///
///     let redis = try PrivateRedis.start(runDirectory: dir)   // blocks until it accepts
///     … RedisEndpoint(address: .unix(path: redis.socketPath)) …
///     redis.stop()
public struct PrivateRedis: Sendable {
    public let pid: pid_t
    public let socketPath: String
    public let runDirectory: String

    public var endpoint: RedisEndpoint { RedisEndpoint(address: .unix(path: socketPath)) }

    /// The redis-server on PATH, or nil.
    public static func serverPath(environmentPath: String? = nil) -> String? {
        let path = environmentPath ?? (getenv("PATH").map { String(cString: $0) } ?? "/usr/local/bin:/usr/bin:/bin")
        for directory in path.split(separator: ":") where !directory.isEmpty {
            let candidate = "\(directory)/redis-server"
            if access(candidate, X_OK) == 0 { return candidate }
        }
        return nil
    }

    /// Starts redis-server with its socket, log and working directory in `runDirectory`
    /// (which must exist) and waits until it accepts connections.
    public static func start(runDirectory: String, serverPath: String? = nil,
                             timeoutMilliseconds: Int = 5_000) throws(PrivateRedisError) -> PrivateRedis {
        guard let server = serverPath ?? Self.serverPath() else { throw .notInstalled }
        let socketPath = runDirectory + "/redis.sock"
        guard socketPath.utf8.count < 100 else { throw .failed("the socket path \(socketPath) is too long") }
        unlink(socketPath)
        let arguments = ["herald", "__exec-child", String(getpid()), server,
                         "--port", "0", "--unixsocket", socketPath, "--unixsocketperm", "700",
                         "--save", "", "--appendonly", "no", "--daemonize", "no",
                         "--dir", runDirectory, "--logfile", runDirectory + "/redis.log"]
        let pid = try spawn(executable: "/proc/self/exe", arguments: arguments)
        let redis = PrivateRedis(pid: pid, socketPath: socketPath, runDirectory: runDirectory)
        var waited = 0
        while waited < timeoutMilliseconds {
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) == pid {
                throw .failed("redis-server exited at start (status \(status)); see \(runDirectory)/redis.log")
            }
            if Self.accepts(socketPath) { return redis }
            usleep(20_000)
            waited += 20
        }
        redis.stop()
        throw .failed("redis-server did not accept on \(socketPath) within \(timeoutMilliseconds) ms")
    }

    /// Stops redis-server (TERM, then KILL after 3 s) and removes its files.
    public func stop() {
        kill(pid, SIGTERM)
        var status: Int32 = 0
        var waited = 0
        while waitpid(pid, &status, WNOHANG) == 0 {
            if waited >= 3_000 {
                kill(pid, SIGKILL)
                _ = waitpid(pid, &status, 0)
                break
            }
            usleep(10_000)
            waited += 10
        }
        unlink(socketPath)
        unlink(runDirectory + "/redis.log")
    }

    static func accepts(_ path: String) -> Bool {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0, var address = Sockets.unixAddress(path) else { return false }
        defer { close(fd) }
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) == 0
            }
        }
    }

    static func spawn(executable: String, arguments: [String]) throws(PrivateRedisError) -> pid_t {
        let devNull = open("/dev/null", O_RDWR | O_CLOEXEC)
        guard devNull >= 0 else { throw .failed("cannot open /dev/null") }
        defer { close(devNull) }
        do {
            return try ProcessSpawner.spawn(path: executable, arguments: arguments,
                                            environment: ProcessSpawner.environment(with: [:]),
                                            descriptors: [(devNull, 0), (devNull, 1)])
        } catch {
            throw .failed(error.description)
        }
    }

    /// `herald __exec-child <parent pid> <program> [arguments…]`: the child side. Sets the
    /// parent-death signal, makes sure the parent is still there, then execs `program`.
    public static func execChild(_ arguments: [String]) -> Int32 {
        guard arguments.count >= 2, let parent = pid_t(arguments[0]) else { return 2 }
        _ = herald_set_parent_death_signal(SIGTERM)
        if getppid() != parent { return 1 }  // the parent died before the signal was armed
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.dropFirst().map { strdup($0) } + [nil]
        execv(arguments[1], &argv)
        return 127
    }
}

public enum PrivateRedisError: Error, Sendable, CustomStringConvertible {
    case notInstalled
    case failed(String)

    public var description: String {
        switch self {
        case .notInstalled: "redis-server is not on PATH"
        case .failed(let why): why
        }
    }
}
