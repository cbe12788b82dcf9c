import Foundation
import Glibc
import HeraldClient
@testable import enum HeraldTestSupport.FreePort
@testable import func HeraldTestSupport.heraldBinaryPath

/// A failure of the test harness, with what happened.
struct HarnessFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// The `herald` binary, a free port and whether a port accepts: HeraldTestSupport's
/// (the integration tests' harness), in this suite's Int ports.
func heraldBinary() -> String { heraldBinaryPath() }

func freePort() throws -> Int { Int(try FreePort.pick()) }

func portAccepts(_ port: Int) -> Bool { FreePort.isAccepting(UInt16(port)) }

func sleepMilliseconds(_ ms: Int) { usleep(useconds_t(ms * 1000)) }

/// A child process started with posix_spawn: stdin/stdout optionally from/to pipes,
/// stderr to a file. Stopped by its pid.
final class ChildProcess: Sendable {
    let pid: pid_t
    /// The pipe ends, each closed exactly once (a second close could hit a reused fd).
    private let stdinFD: Locked<Int32?>
    private let stdoutFD: Locked<Int32?>
    let stderrPath: String
    private let status = Locked<Int32?>(nil)

    /// Runs `executable` (default: the herald binary) with `arguments`.
    init(_ arguments: [String], executable: String? = nil, stdinPipe: Bool = false, stdoutPipe: Bool = false) throws {
        let path = executable ?? heraldBinary()
        guard access(path, X_OK) == 0 else { throw HarnessFailure("no executable at \(path) (set HERALD_BINARY)") }
        stderrPath = "/tmp/herald-client-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).log"
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        var inPipe: [Int32] = [-1, -1]
        var outPipe: [Int32] = [-1, -1]
        if stdinPipe {
            guard pipe(&inPipe) == 0, fcntl(inPipe[0], F_SETFD, FD_CLOEXEC) == 0, fcntl(inPipe[1], F_SETFD, FD_CLOEXEC) == 0 else { throw HarnessFailure("pipe2") }
            posix_spawn_file_actions_adddup2(&actions, inPipe[0], 0)
        } else {
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        }
        if stdoutPipe {
            guard pipe(&outPipe) == 0, fcntl(outPipe[0], F_SETFD, FD_CLOEXEC) == 0, fcntl(outPipe[1], F_SETFD, FD_CLOEXEC) == 0 else { throw HarnessFailure("pipe2") }
            posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1)
        } else {
            posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        }
        posix_spawn_file_actions_addopen(&actions, 2, stderrPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        // Default signal dispositions and an empty mask, whatever the test runner has.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var all = sigset_t()
        sigfillset(&all)
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))
        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        var child: pid_t = 0
        // Its own run directory (pidfile, control socket), so that servers of tests
        // running in parallel do not take each other's pidfile.
        var runDirectory = Array("/tmp/herald-client-run-XXXXXX".utf8CString)
        let made = runDirectory.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        var environment = ProcessInfo.processInfo.environment.filter { $0.key != "HERALD_RUN_DIR" }
        if let made { environment["HERALD_RUN_DIR"] = String(cString: made) }
        let envp: [UnsafeMutablePointer<CChar>?] = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { envp.forEach { free($0) } }
        let rc = posix_spawn(&child, path, &actions, &attributes, argv, envp)
        if stdinPipe { close(inPipe[0]) }
        if stdoutPipe { close(outPipe[1]) }
        guard rc == 0 else {
            if stdinPipe { close(inPipe[1]) }
            if stdoutPipe { close(outPipe[0]) }
            throw HarnessFailure("posix_spawn \(path): \(rc)")
        }
        pid = child
        stdinFD = Locked(stdinPipe ? inPipe[1] : nil)
        stdoutFD = Locked(stdoutPipe ? outPipe[0] : nil)
    }

    /// Writes to the child's stdin.
    func write(_ text: String) {
        guard let fd = stdinFD.withLock({ $0 }) else { return }
        var bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeMutableBytes { Glibc.write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n <= 0 { return }
            offset += n
        }
        bytes.removeAll()
    }

    /// Closes the child's stdin (end of input).
    func closeStdin() {
        if let fd = stdinFD.withLock({ fd in defer { fd = nil }; return fd }) { close(fd) }
    }

    private func closeStdout() {
        if let fd = stdoutFD.withLock({ fd in defer { fd = nil }; return fd }) { close(fd) }
    }

    /// Reads the child's stdout to its end.
    func readAllStdout() -> String {
        guard let fd = stdoutFD.withLock({ $0 }) else { return "" }
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            out.append(contentsOf: buffer[0..<n])
        }
        closeStdout()
        return String(decoding: out, as: UTF8.self)
    }

    /// Waits up to `ms` for the child to exit; returns its raw wait status.
    @discardableResult
    func wait(milliseconds ms: Int) -> Int32? {
        if let s = status.withLock({ $0 }) { return s }
        var waited = 0
        while waited <= ms {
            var raw: Int32 = 0
            let r = waitpid(pid, &raw, WNOHANG)
            if r == pid {
                status.withLock { $0 = raw }
                return raw
            }
            if r < 0 { return status.withLock { $0 } }
            sleepMilliseconds(10)
            waited += 10
        }
        return nil
    }

    /// The exit code, when it exited normally.
    func exitCode(waitingMilliseconds ms: Int) -> Int32? {
        guard let raw = wait(milliseconds: ms) else { return nil }
        return (raw & 0x7f) == 0 ? (raw >> 8) & 0xff : nil
    }

    func signal(_ signal: Int32) {
        if status.withLock({ $0 }) == nil { kill(pid, signal) }
    }

    /// SIGTERM, then SIGKILL after `graceMilliseconds`; always reaps.
    func stop(graceMilliseconds: Int = 5000) {
        signal(SIGTERM)
        if wait(milliseconds: graceMilliseconds) == nil {
            signal(SIGKILL)
            wait(milliseconds: 5000)
        }
        closeStdin()
        closeStdout()
        if getenv("HERALD_KEEP_TEST_LOGS") == nil { unlink(stderrPath) }
    }

    var stderrText: String {
        guard let file = fopen(stderrPath, "r") else { return "" }
        defer { fclose(file) }
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = fread(&buffer, 1, buffer.count, file)
            if n <= 0 { break }
            out.append(contentsOf: buffer[0..<n])
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// `herald start` on a loopback port, in the foreground.
final class HeraldServer: Sendable {
    let port: Int
    let process: ChildProcess

    /// Starts the server and waits until its port (and `alsoWaitFor`) accept.
    /// `arguments` go to `herald start` as they are (e.g. `--tls-port N --cert F --key F`).
    init(port: Int? = nil, settings: [String] = [], arguments extra: [String] = [], alsoWaitFor: [Int] = []) throws {
        let port = try port ?? freePort()
        var arguments = ["start", "--port", String(port), "--bind", "127.0.0.1"]
        for setting in settings { arguments += ["--set", setting] }
        arguments += extra
        let process = try ChildProcess(arguments)
        self.port = port
        self.process = process
        var waited = 0
        while !([port] + alsoWaitFor).allSatisfy(portAccepts) {
            if process.wait(milliseconds: 0) != nil {
                throw HarnessFailure("herald exited at start: \(process.stderrText)")
            }
            if waited > 10_000 {
                process.stop()
                throw HarnessFailure("herald did not accept on \(port) within 10 s: \(process.stderrText)")
            }
            sleepMilliseconds(20)
            waited += 20
        }
    }

    /// Graceful stop (SIGTERM), SIGKILL if it hangs; reaped either way.
    func stop() { process.stop() }
}

final class ThreadBox: Sendable {
    let run: @Sendable () -> Void
    init(_ run: @escaping @Sendable () -> Void) { self.run = run }
}

/// Runs blocking harness work (waiting for a process, a port, a pipe) on its own
/// thread, so it never holds one of the few cooperative-pool threads the client's
/// timers and continuations need (this machine may have 2).
func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
        let box = Unmanaged.passRetained(ThreadBox {
            do { continuation.resume(returning: try body()) } catch { continuation.resume(throwing: error) }
        }).toOpaque()
        var thread = pthread_t()
        let rc = pthread_create(&thread, nil, { argument in
            Unmanaged<ThreadBox>.fromOpaque(argument!).takeRetainedValue().run()
            return nil
        }, box)
        if rc != 0 {
            Unmanaged<ThreadBox>.fromOpaque(box).release()
            continuation.resume(throwing: HarnessFailure("pthread_create: \(rc)"))
        } else {
            pthread_detach(thread)
        }
    }
}

extension HeraldServer {
    /// Starts a server off the cooperative pool.
    static func start(port: Int? = nil, settings: [String] = [], arguments: [String] = [],
                      alsoWaitFor: [Int] = []) async throws -> HeraldServer {
        try await offPool { try HeraldServer(port: port, settings: settings, arguments: arguments, alsoWaitFor: alsoWaitFor) }
    }

    /// Stops (SIGTERM, SIGKILL if it hangs) and reaps, off the cooperative pool.
    func stopAndWait() async {
        _ = try? await offPool { self.stop() }
    }
}

/// Runs `body` with a fresh server, and stops the server by its pid afterwards,
/// also when `body` throws.
func withServer<R: Sendable>(port: Int? = nil, settings: [String] = [], arguments: [String] = [], alsoWaitFor: [Int] = [],
                             _ body: (HeraldServer) async throws -> R) async throws -> R {
    let server = try await HeraldServer.start(port: port, settings: settings, arguments: arguments, alsoWaitFor: alsoWaitFor)
    do {
        let result = try await body(server)
        await server.stopAndWait()
        return result
    } catch {
        await server.stopAndWait()
        throw error
    }
}
