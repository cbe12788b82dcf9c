import Foundation
import Glibc
import HeraldClient
@testable import enum HeraldTestSupport.FreePort
@testable import func HeraldTestSupport.heraldBinaryPath
@testable import class HeraldTestSupport.ChildProcess

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

extension ChildProcess {
    /// `herald` (HeraldTestSupport's spawner, watchdog included) as the client tests run
    /// it: stdin and stdout from/to /dev/null or pipes, stderr to a log file of its own,
    /// the working directory and environment of the test process but a run directory of
    /// its own (pidfile, control socket), so that servers of tests running in parallel
    /// do not take each other's pidfile.
    static func herald(_ arguments: [String], stdin: Input = .devNull, stdout: Output = .file("/dev/null")) throws -> ChildProcess {
        let stderrPath = "/tmp/herald-client-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).log"
        var runDirectory = Array("/tmp/herald-client-run-XXXXXX".utf8CString)
        let made = runDirectory.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        var environment = ProcessInfo.processInfo.environment.filter { $0.key != "HERALD_RUN_DIR" }
        if let made { environment["HERALD_RUN_DIR"] = String(cString: made) }
        return try ChildProcess(path: heraldBinary(), arguments: arguments, environment: environment,
                                directory: URL(fileURLWithPath: FileManager.default.currentDirectoryPath),
                                stdin: stdin, stdout: stdout, stderrPath: stderrPath)
    }

    /// `stop(grace:)`, then removes the stderr log (unless HERALD_KEEP_TEST_LOGS is set).
    func stopAndRemoveLog(grace: Double = 5) {
        stop(grace: grace)
        if getenv("HERALD_KEEP_TEST_LOGS") == nil { unlink(stderrPath) }
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
        let process = try ChildProcess.herald(arguments)
        self.port = port
        self.process = process
        var waited = 0
        while !([port] + alsoWaitFor).allSatisfy(portAccepts) {
            if process.waitForExit(timeout: 0) != nil {
                throw HarnessFailure("herald exited at start: \(process.stderrText)")
            }
            if waited > 10_000 {
                process.stopAndRemoveLog()
                throw HarnessFailure("herald did not accept on \(port) within 10 s: \(process.stderrText)")
            }
            sleepMilliseconds(20)
            waited += 20
        }
    }

    /// Graceful stop (SIGTERM), SIGKILL if it hangs; reaped either way.
    func stop() { process.stopAndRemoveLog() }
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
