import Foundation
import Glibc
import Synchronization
import Testing

/// Errors of the harness and of the checks built on it. Each says what was expected
/// and what happened, so a failing test explains itself.
enum HarnessError: Error, CustomStringConvertible {
    case binaryMissing(String)
    case system(String, Int32)
    case startFailed(String)
    case timeout(String)
    case closed(String)
    case mismatch(String)
    case withServerLog(String, stderr: String)

    var description: String {
        switch self {
        case .binaryMissing(let path):
            return "the herald binary is missing: no executable at \(path). Build it with `swift build` (it lands next to the test bundle) or point HERALD_BINARY at it."
        case .system(let what, let err): return "\(what) failed: \(String(cString: strerror(err))) (errno \(err))"
        case .startFailed(let text): return "herald did not start: \(text)"
        case .timeout(let text): return "timed out: \(text)"
        case .closed(let text): return "connection closed: \(text)"
        case .mismatch(let text): return text
        case .withServerLog(let text, let stderr): return "\(text)\n--- herald stderr (tail) ---\n\(stderr)"
        }
    }
}

/// glibc's posix_spawn extensions, found with dlsym (Swift does not import GNU-only API).
enum GNUSpawn {
    typealias CloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
    typealias Chdir = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, UnsafePointer<CChar>) -> Int32

    static let addCloseFrom: CloseFrom? = dlsym(nil, "posix_spawn_file_actions_addclosefrom_np").map {
        unsafeBitCast($0, to: CloseFrom.self)
    }
    static let addChdir: Chdir? = dlsym(nil, "posix_spawn_file_actions_addchdir_np").map {
        unsafeBitCast($0, to: Chdir.self)
    }
}

/// How a finished process ended.
enum ExitStatus: Equatable, CustomStringConvertible {
    case exited(Int32)
    case signaled(Int32)

    init(raw: Int32) {
        let sig = raw & 0x7f
        self = sig == 0 ? .exited((raw >> 8) & 0xff) : .signaled(sig)
    }

    /// The exit code, when it exited normally (not by a signal).
    var exitCode: Int32? {
        if case .exited(let code) = self { return code }
        return nil
    }

    var description: String {
        switch self {
        case .exited(let code): return "exit status \(code)"
        case .signaled(let sig): return "killed by signal \(sig)"
        }
    }
}

/// What to start herald with. Defaults: one worker, bound to 127.0.0.1 on a free port.
struct HeraldOptions {
    /// `--set key=value` pairs, in this order.
    var settings: [(String, String)] = []
    /// Extra environment on top of the test process's (whose HERALD_* variables are dropped).
    var environment: [String: String] = [:]
    /// JSON text written to `herald.json` in the working directory and passed as `--config`.
    var configFile: String? = nil
    var workers: Int? = 1
    /// Pass `--port`/`--bind` (false: the test arranges the port through env or config).
    var passPortFlag = true
    /// When `passPortFlag` is false: the port the server is expected to listen on.
    var expectedPort: UInt16? = nil
    var logLevel: String? = ProcessInfo.processInfo.environment["HERALD_TEST_LOG_LEVEL"]
    var extraArguments: [String] = []
    /// Prepares the working directory (e.g. the public directory) before the start.
    var prepare: ((URL) throws -> Void)? = nil
    /// Runs herald in its own UTS namespace with this host name (`unshare -u`; needs
    /// root), so that two test "hosts" have different names, as two machines would.
    var hostName: String? = nil
    /// The herald binary to start (default: `heraldBinaryPath()`), e.g. a copy a test
    /// replaces to see what an upgrade to a broken binary does.
    var binary: String? = nil

    init(_ settings: [(String, String)] = []) { self.settings = settings }
}

/// Where the herald binary is: HERALD_BINARY, or next to the running test executable.
func heraldBinaryPath() -> String {
    if let explicit = ProcessInfo.processInfo.environment["HERALD_BINARY"], !explicit.isEmpty {
        return explicit
    }
    var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
    let n = readlink("/proc/self/exe", &buf, buf.count - 1)
    let exe = n > 0 ? String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : CommandLine.arguments[0]
    var dir = URL(fileURLWithPath: exe).deletingLastPathComponent()
    // Inside an .xctest bundle directory (Darwin-style layouts), climb out of it.
    while dir.path.contains(".xctest") { dir.deleteLastPathComponent() }
    return dir.appendingPathComponent("herald").path
}

/// Creates a fresh private directory under the system temp dir.
func makeTempDir(_ prefix: String = "herald-itest") throws -> URL {
    var template = Array((FileManager.default.temporaryDirectory.path + "/\(prefix)-XXXXXX").utf8CString)
    guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
        throw HarnessError.system("mkdtemp", errno)
    }
    return URL(fileURLWithPath: String(cString: made), isDirectory: true)
}

/// A child process started with posix_spawn: its own process group, signal defaults
/// restored, no inherited descriptors beyond 0–2. A watchdog shell holds the read end of
/// a pipe only this test process writes to: if the test process dies without stopping
/// the child, the pipe closes and the watchdog kills the child's whole process group.
///
/// stdin is /dev/null or a pipe this side writes (`write`, `closeStdin`); stdout is a file
/// or a pipe this side reads (`readAllStdout`); stderr is a file (`stderrPath`). Sendable:
/// its state is behind a mutex, so async tests may hand it to other threads (`offPool`).
final class ChildProcess: Sendable {
    /// Where the child's stdin comes from.
    enum Input: Sendable { case devNull, pipe }
    /// Where the child's stdout goes.
    enum Output: Sendable { case file(String), pipe }

    let pid: pid_t
    let stderrPath: String

    private struct State {
        var status: ExitStatus?
        var watchdogPid: pid_t = -1
        var watchdogPipe: Int32 = -1
        /// The pipe ends, each closed exactly once (a second close could hit a reused fd).
        var stdinFD: Int32?
        var stdoutFD: Int32?
    }
    private let state: Mutex<State>

    var status: ExitStatus? { state.withLock { $0.status } }

    convenience init(path: String, arguments: [String], environment: [String: String], directory: URL,
                     stdoutPath: String, stderrPath: String) throws {
        try self.init(path: path, arguments: arguments, environment: environment, directory: directory,
                      stdin: .devNull, stdout: .file(stdoutPath), stderrPath: stderrPath)
    }

    init(path: String, arguments: [String], environment: [String: String], directory: URL,
         stdin: Input, stdout: Output, stderrPath: String) throws {
        guard access(path, X_OK) == 0 else { throw HarnessError.binaryMissing(path) }
        var env = environment
        env["PWD"] = directory.path
        var inPipe: [Int32] = [-1, -1]
        var outPipe: [Int32] = [-1, -1]
        func closeAll() { for fd in inPipe + outPipe where fd >= 0 { Glibc.close(fd) } }
        if case .pipe = stdin { try ChildProcess.makePipe(&inPipe) }
        if case .pipe = stdout {
            do { try ChildProcess.makePipe(&outPipe) } catch { closeAll(); throw error }
        }
        let spawnStdin: Stdin = inPipe[0] >= 0 ? .fd(inPipe[0]) : .devNull
        let spawnStdout: Stdout
        switch stdout {
        case .file(let path): spawnStdout = .path(path)
        case .pipe: spawnStdout = .fd(outPipe[1])
        }
        do {
            pid = try ChildProcess.spawn(path: path, arguments: arguments, environment: env,
                                         directory: directory.path, stdin: spawnStdin,
                                         stdout: spawnStdout, stderr: stderrPath, newGroup: true)
        } catch {
            closeAll()
            throw error
        }
        // The child's ends are the child's now.
        if inPipe[0] >= 0 { Glibc.close(inPipe[0]) }
        if outPipe[1] >= 0 { Glibc.close(outPipe[1]) }
        self.stderrPath = stderrPath
        state = Mutex(State(stdinFD: inPipe[1] >= 0 ? inPipe[1] : nil,
                            stdoutFD: outPipe[0] >= 0 ? outPipe[0] : nil))
        startWatchdog()
    }

    private static func makePipe(_ fds: inout [Int32]) throws {
        guard pipe(&fds) == 0 else { throw HarnessError.system("pipe", errno) }
        _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
    }

    private enum Stdin { case devNull, fd(Int32) }
    private enum Stdout { case path(String), fd(Int32) }

    private static func spawn(path: String, arguments: [String], environment: [String: String],
                              directory: String, stdin: Stdin, stdout: Stdout, stderr: String,
                              newGroup: Bool) throws -> pid_t {
        _ = testProcessIgnoresSIGPIPE
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        switch stdin {
        case .devNull: posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        case .fd(let fd): posix_spawn_file_actions_adddup2(&actions, fd, 0)
        }
        switch stdout {
        case .path(let path): posix_spawn_file_actions_addopen(&actions, 1, path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0o644)
        case .fd(let fd): posix_spawn_file_actions_adddup2(&actions, fd, 1)
        }
        posix_spawn_file_actions_addopen(&actions, 2, stderr, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0o644)
        // GNU extensions Swift's Glibc module does not show: looked up at run time.
        if let closeFrom = GNUSpawn.addCloseFrom { _ = closeFrom(&actions, 3) }
        guard let addChdir = GNUSpawn.addChdir else {
            throw HarnessError.startFailed("posix_spawn_file_actions_addchdir_np is not available (glibc 2.29+ needed)")
        }
        _ = addChdir(&actions, directory)

        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var flags = Int32(POSIX_SPAWN_SETSIGMASK) | Int32(POSIX_SPAWN_SETSIGDEF)
        if newGroup {
            flags |= Int32(POSIX_SPAWN_SETPGROUP)
            posix_spawnattr_setpgroup(&attr, 0)
        }
        posix_spawnattr_setflags(&attr, Int16(flags))
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigmask(&attr, &none)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for sig in [SIGPIPE, SIGTERM, SIGINT, SIGHUP, SIGCHLD, SIGQUIT, SIGUSR1, SIGUSR2, SIGTTIN, SIGTTOU] {
            sigaddset(&defaults, sig)
        }
        posix_spawnattr_setsigdefault(&attr, &defaults)

        let argv: [UnsafeMutablePointer<CChar>?] = ([path] + arguments).map { strdup($0) } + [nil]
        let envp: [UnsafeMutablePointer<CChar>?] = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, path, &actions, &attr, argv, envp)
        guard rc == 0 else { throw HarnessError.system("posix_spawn \(path)", rc) }
        return pid
    }

    private func startWatchdog() {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { return }
        // Children close every descriptor above 2 (closefrom), so no child inherits the
        // write end; FD_CLOEXEC as well in case that extension is missing.
        _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
        // The shell ignores the signals a terminal or a test runner sends its process
        // group, waits for end-of-file on the pipe, then kills herald's group.
        let script = "trap '' INT TERM HUP QUIT; read _ignored; kill -s KILL -- \"-$1\" 2>/dev/null"
        let wd = try? ChildProcess.spawn(path: "/bin/sh", arguments: ["-c", script, "herald-watchdog", String(pid)],
                                         environment: ["PATH": "/usr/bin:/bin"], directory: "/",
                                         stdin: .fd(fds[0]), stdout: .path("/dev/null"), stderr: "/dev/null",
                                         newGroup: false)
        Glibc.close(fds[0])
        if let wd {
            let pipeEnd = fds[1]
            state.withLock {
                $0.watchdogPid = wd
                $0.watchdogPipe = pipeEnd
            }
        } else {
            Glibc.close(fds[1])
        }
    }

    private static func stopWatchdog(_ state: inout State) {
        guard state.watchdogPid > 0 else { return }
        kill(state.watchdogPid, SIGKILL)
        var raw: Int32 = 0
        while waitpid(state.watchdogPid, &raw, 0) < 0 && errno == EINTR {}
        state.watchdogPid = -1
        Glibc.close(state.watchdogPipe)
        state.watchdogPipe = -1
    }

    /// Whether the process has not exited (checked without reaping it).
    private func running(_ state: State) -> Bool {
        if state.status != nil { return false }
        var info = siginfo_t()
        let rc = waitid(P_PID, id_t(pid), &info, WEXITED | WNOHANG | WNOWAIT)
        if rc != 0 { return false }
        return info.si_signo != SIGCHLD
    }

    /// True while the process has not exited (checked without reaping it).
    var isRunning: Bool { state.withLock { running($0) } }

    /// Reaps the process if it has exited (and kills any process left in its group);
    /// under the lock, so that two threads waiting at once reap it once. Nil: running.
    private func reapIfExited() -> ExitStatus? {
        state.withLock { state in
            if let status = state.status { return status }
            if running(state) { return nil }
            // The leader is a zombie: its group id cannot have been reused. Clear stragglers.
            kill(-pid, SIGKILL)
            var raw: Int32 = 0
            while waitpid(pid, &raw, 0) < 0 && errno == EINTR {}
            let status = ExitStatus(raw: raw)
            state.status = status
            ChildProcess.stopWatchdog(&state)
            return status
        }
    }

    /// Waits up to `timeout` seconds for the process to exit; reaps it (and kills any
    /// process left in its group) once it has. Nil: still running.
    @discardableResult
    func waitForExit(timeout: Double) -> ExitStatus? {
        let deadline = Deadline(timeout)
        while true {
            if let status = reapIfExited() { return status }
            if deadline.passed { return nil }
            usleep(5_000)
        }
    }

    func signal(_ sig: Int32) {
        state.withLock { if $0.status == nil { kill(pid, sig) } }
    }

    /// SIGTERM, then SIGKILL (to the whole group) after `grace` seconds; then closes this
    /// side's pipe ends. Returns the exit status and whether SIGKILL was needed.
    @discardableResult
    func stop(grace: Double = 10) -> (ExitStatus, killed: Bool) {
        defer {
            closeStdin()
            closeStdout()
        }
        if let status { return (status, false) }
        signal(SIGTERM)
        if let st = waitForExit(timeout: grace) { return (st, false) }
        kill(-pid, SIGKILL)
        kill(pid, SIGKILL)
        let st = waitForExit(timeout: 30) ?? .signaled(SIGKILL)
        return (st, true)
    }

    /// Writes `text` to the child's stdin pipe (nothing without one, or once it closed).
    func write(_ text: String) {
        guard let fd = state.withLock({ $0.stdinFD }) else { return }
        let bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n <= 0 { return }
            offset += n
        }
    }

    /// Closes the child's stdin pipe (end of input).
    func closeStdin() {
        if let fd = state.withLock({ state in defer { state.stdinFD = nil }; return state.stdinFD }) { Glibc.close(fd) }
    }

    private func closeStdout() {
        if let fd = state.withLock({ state in defer { state.stdoutFD = nil }; return state.stdoutFD }) { Glibc.close(fd) }
    }

    /// Reads the child's stdout pipe to its end, then closes it ("" without one).
    func readAllStdout() -> String {
        guard let fd = state.withLock({ $0.stdoutFD }) else { return "" }
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

    /// What the child wrote to stderr so far.
    var stderrText: String {
        (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? ""
    }

    deinit {
        if status == nil { _ = stop(grace: 2) }
        state.withLock { ChildProcess.stopWatchdog(&$0) }
        closeStdin()
        closeStdout()
    }
}

/// One running `herald start` with its working directory and logs.
final class HeraldProcess {
    let port: UInt16
    let directory: URL
    let process: ChildProcess
    let arguments: [String]
    private var clients: [LineClient] = []

    var stderrPath: String { directory.appendingPathComponent("herald.stderr").path }
    var stdoutPath: String { directory.appendingPathComponent("herald.stdout").path }

    private init(port: UInt16, directory: URL, process: ChildProcess, arguments: [String]) {
        self.port = port
        self.directory = directory
        self.process = process
        self.arguments = arguments
    }

    /// Starts herald and waits (up to 10 s) until it serves a connection: the probe
    /// connection must receive its welcome line; it then quits and is closed.
    static func start(_ options: HeraldOptions = HeraldOptions(), directory: URL? = nil) throws -> HeraldProcess {
        let binary = options.binary ?? heraldBinaryPath()
        guard access(binary, X_OK) == 0 else { throw HarnessError.binaryMissing(binary) }
        let dir = try directory ?? makeTempDir()
        var started = false
        defer { if !started && directory == nil { try? FileManager.default.removeItem(at: dir) } }
        try options.prepare?(dir)
        var lastFailure = ""
        attempts: for _ in 0..<3 {
            let port: UInt16
            var args = ["start"]
            if options.passPortFlag {
                port = try FreePort.pick()
                args += ["--port", String(port), "--bind", "127.0.0.1"]
            } else {
                guard let expected = options.expectedPort else {
                    throw HarnessError.startFailed("passPortFlag is false but no expectedPort was given")
                }
                port = expected
            }
            if let workers = options.workers { args += ["--workers", String(workers)] }
            if let configFile = options.configFile {
                let path = dir.appendingPathComponent("herald.json")
                try configFile.write(to: path, atomically: true, encoding: .utf8)
                args += ["--config", path.path]
            }
            for (key, value) in options.settings { args += ["--set", "\(key)=\(value)"] }
            if let level = options.logLevel { args += ["--log-level", level] }
            args += options.extraArguments

            var env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("HERALD_") }
            // Runtime files (pidfile, control socket) in the private directory, so that
            // servers of tests running in parallel do not collide.
            env["HERALD_RUN_DIR"] = dir.path
            env.merge(options.environment) { $1 }
            var path = binary
            var spawnArguments = args
            if let hostName = options.hostName {
                // unshare and sh both exec: the child's pid stays herald's own.
                path = "/usr/bin/unshare"
                spawnArguments = ["--uts", "--", "/bin/sh", "-c", #"hostname "$1" && shift && exec "$@""#, "sh", hostName, binary] + args
            }
            let child = try ChildProcess(path: path, arguments: spawnArguments, environment: env, directory: dir,
                                         stdoutPath: dir.appendingPathComponent("herald.stdout").path,
                                         stderrPath: dir.appendingPathComponent("herald.stderr").path)
            let server = HeraldProcess(port: port, directory: dir, process: child, arguments: args)
            switch server.waitUntilServing(timeout: 10) {
            case .ready:
                started = true
                return server
            case .exited(let status):
                lastFailure = "`herald \(args.joined(separator: " "))` exited (\(status)) before serving on port \(port)\n--- stderr ---\n\(server.stderrTail())"
                if !options.passPortFlag { break attempts }
                continue attempts  // maybe the port was taken meanwhile: retry with a fresh one
            case .notServing(let why):
                let (status, _) = child.stop(grace: 3)
                lastFailure = "`herald \(args.joined(separator: " "))` did not serve on port \(port) within 10 s (\(why)); stopped it (\(status))\n--- stderr ---\n\(server.stderrTail())"
                break attempts
            }
        }
        throw HarnessError.startFailed(lastFailure)
    }

    private enum Readiness { case ready, exited(ExitStatus), notServing(String) }

    private func waitUntilServing(timeout: Double) -> Readiness {
        let deadline = Deadline(timeout)
        var why = "nothing accepted connections"
        while !deadline.passed {
            if !process.isRunning, let status = process.waitForExit(timeout: 0) { return .exited(status) }
            if let probe = try? LineClient(port: port, connectTimeout: 1) {
                do {
                    _ = try probe.readLine(timeout: max(0.05, deadline.remaining))
                    try? probe.send("quit")
                    try? probe.expectClosed(timeout: 1)
                    probe.close()
                    return .ready
                } catch {
                    why = "a connection was accepted but no welcome line came: \(error)"
                    probe.close()
                    if !process.isRunning, let status = process.waitForExit(timeout: 0) { return .exited(status) }
                }
            }
            usleep(10_000)
        }
        return .notServing(why)
    }

    /// Opens a client connection (which this server scope closes at the end).
    func connect() throws -> LineClient {
        let client = try LineClient(port: port)
        clients.append(client)
        return client
    }

    /// Opens a client and reads its welcome line; returns the client and that line.
    func connectWelcomed(file: StaticString = #filePath, line: UInt = #line) throws -> (LineClient, String) {
        let client = try connect()
        let welcome = try client.readLine()
        guard welcome.hasPrefix(#"{"welcome":"#) else {
            throw HarnessError.mismatch("expected a welcome line first, got \(welcome) (at \(file):\(line))")
        }
        return (client, welcome)
    }

    /// Opens a client, reads the welcome, and returns the connection id (via detailsView,
    /// which takes messageCount 1 on that connection).
    func connectWithId() throws -> (LineClient, String) {
        let (client, _) = try connectWelcomed()
        try client.send("detailsView")
        let reply = try JSON.parse(try client.readLine())
        guard let id = reply["data"]?["id"]?.stringValue else {
            throw HarnessError.mismatch("detailsView reply has no data.id: \(reply)")
        }
        return (client, id)
    }

    var isRunning: Bool { process.isRunning }

    /// Set once the test itself signalled the server: its exit is then expected.
    private(set) var signalledByTest = false

    /// Sends `sig` (e.g. SIGTERM, SIGINT) to herald, as an operator would.
    func signal(_ sig: Int32) {
        signalledByTest = true
        process.signal(sig)
    }

    /// Waits for herald to exit after a signal; nil if it is still running after `timeout`.
    func waitForExit(timeout: Double) -> ExitStatus? {
        process.waitForExit(timeout: timeout)
    }

    /// Fails unless the server process is still running.
    func requireAlive(_ context: String) throws {
        if !process.isRunning {
            let status = process.waitForExit(timeout: 1).map(\.description) ?? "?"
            throw HarnessError.mismatch("the herald process died (\(status)) \(context)")
        }
    }

    /// A fresh connection gets its welcome and a reply to `randomNumber`.
    func requireServing(_ context: String) throws {
        try requireAlive(context)
        let client = try LineClient(port: port)
        defer { client.close() }
        do {
            _ = try client.readLine()
            try client.send("randomNumber")
            try expectLine(try client.readLine(), #"{"randomNumber":<NUM>,"context":"response","messageCount":1}"#)
        } catch {
            throw HarnessError.mismatch("the server no longer serves a new connection \(context): \(error)")
        }
    }

    func stderrText() -> String {
        (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? ""
    }

    func stderrTail(_ lines: Int = 60) -> String {
        let all = stderrText().split(separator: "\n", omittingEmptySubsequences: false)
        return all.suffix(lines).joined(separator: "\n")
    }

    func closeClients() {
        clients.forEach { $0.close() }
        clients.removeAll()
    }

    /// Graceful stop (SIGTERM), SIGKILL after `grace` seconds. Removes the directory.
    @discardableResult
    func stop(grace: Double = 10) -> (ExitStatus, killed: Bool) {
        closeClients()
        let result = process.stop(grace: grace)
        return result
    }

    func removeDirectory() {
        try? FileManager.default.removeItem(at: directory)
    }
}

/// Runs `body` against a fresh herald started with `options`, then stops it — also when
/// `body` throws. A failure gets the tail of herald's stderr attached; a stop that needs
/// SIGKILL or a non-zero exit is recorded as an issue too.
func withHerald(_ options: HeraldOptions = HeraldOptions(),
                sourceLocation: SourceLocation = #_sourceLocation,
                _ body: (HeraldProcess) throws -> Void) throws {
    let server = try HeraldProcess.start(options)
    var bodyError: Error?
    do {
        try body(server)
    } catch {
        bodyError = error
    }
    let alreadyExited = !server.process.isRunning
    let (status, killed) = server.stop()
    let tail = server.stderrTail()
    defer { server.removeDirectory() }
    if let bodyError {
        let death = alreadyExited && !server.signalledByTest ? "herald had exited during the test (\(status))\n" : ""
        if let harness = bodyError as? HarnessError {
            throw HarnessError.withServerLog(death + harness.description, stderr: tail)
        }
        Issue.record("\(death)herald stderr (tail):\n\(tail)", sourceLocation: sourceLocation)
        throw bodyError
    }
    if alreadyExited && !server.signalledByTest {
        Issue.record("herald exited during the test without being asked to (\(status))\n--- herald stderr (tail) ---\n\(tail)", sourceLocation: sourceLocation)
    } else if killed {
        Issue.record("herald did not exit within 10 s of SIGTERM and was killed\n--- herald stderr (tail) ---\n\(tail)", sourceLocation: sourceLocation)
    } else if !alreadyExited && status != .exited(0) {
        Issue.record("herald ended with \(status) after SIGTERM (expected exit status 0)\n--- herald stderr (tail) ---\n\(tail)", sourceLocation: sourceLocation)
    }
}

/// Runs herald to completion (e.g. `--help`), killing it after `timeout` seconds.
func runHerald(_ arguments: [String], timeout: Double = 10) throws -> (status: ExitStatus, stdout: String, stderr: String) {
    let binary = heraldBinaryPath()
    guard access(binary, X_OK) == 0 else { throw HarnessError.binaryMissing(binary) }
    let dir = try makeTempDir()
    defer { try? FileManager.default.removeItem(at: dir) }
    let out = dir.appendingPathComponent("stdout").path
    let err = dir.appendingPathComponent("stderr").path
    var env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("HERALD_") }
    env["HERALD_RUN_DIR"] = dir.path
    let child = try ChildProcess(path: binary, arguments: arguments, environment: env, directory: dir,
                                 stdoutPath: out, stderrPath: err)
    guard let status = child.waitForExit(timeout: timeout) else {
        _ = child.stop(grace: 2)
        throw HarnessError.timeout("`herald \(arguments.joined(separator: " "))` did not finish within \(timeout) s")
    }
    let stdout = (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
    let stderr = (try? String(contentsOfFile: err, encoding: .utf8)) ?? ""
    return (status, stdout, stderr)
}

/// The test process ignores SIGPIPE (set before its first child starts): a write to a
/// child that died, or to a server a test has stopped, fails with EPIPE and the test
/// reports it, where SIGPIPE would end the whole run with every test in it.
let testProcessIgnoresSIGPIPE: Void = { signal(SIGPIPE, SIG_IGN) }()
