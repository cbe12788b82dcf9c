import Foundation
import Glibc

/// A real `redis-server` on a free loopback port, private to one test: no persistence,
/// its own process group, killed when the test ends (or the test process dies).
final class RedisServer {
    private(set) var port: UInt16 = 0
    let directory: URL
    private var process: ChildProcess?
    /// `requirepass`, set in a config file (so that it is on no command line).
    let password: String?

    var url: String { "redis://127.0.0.1:\(port)" }

    init(password: String? = nil) throws {
        self.password = password
        directory = try makeTempDir("herald-redis")
        var lastError: Error?
        for _ in 0..<3 {
            port = try FreePort.pick()
            do {
                try start()
                return
            } catch {
                lastError = error
            }
        }
        throw lastError ?? HarnessError.startFailed("redis-server did not start")
    }

    /// The path of redis-server, or nil when it is not installed.
    static var binary: String? {
        for candidate in ["/usr/bin/redis-server", "/usr/local/bin/redis-server", "/usr/sbin/redis-server"]
        where access(candidate, X_OK) == 0 { return candidate }
        return nil
    }

    /// Starts (or restarts) the server on the same port.
    func start() throws {
        guard let binary = Self.binary else {
            throw HarnessError.startFailed("redis-server is not installed (deploy/setup.sh installs it)")
        }
        var configFile: [String] = []
        if let password {
            let path = directory.appendingPathComponent("redis.conf")
            try "requirepass \(password)\n".write(to: path, atomically: true, encoding: .utf8)
            configFile = [path.path]
        }
        let child = try ChildProcess(
            path: binary,
            arguments: configFile + ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                        "--daemonize", "no", "--dir", directory.path, "--protected-mode", "no"],
            environment: ["PATH": "/usr/bin:/bin"], directory: directory,
            stdoutPath: directory.appendingPathComponent("redis.log").path,
            stderrPath: directory.appendingPathComponent("redis.err").path)
        process = child
        let deadline = Deadline(10)
        while !deadline.passed {
            if !child.isRunning {
                throw HarnessError.startFailed("redis-server exited: \((try? String(contentsOfFile: directory.appendingPathComponent("redis.log").path, encoding: .utf8)) ?? "")")
            }
            if (try? command("PING")) == "+PONG" { return }
            usleep(20_000)
        }
        throw HarnessError.timeout("redis-server on port \(port) did not answer PING within 10 s")
    }

    /// Stops the server (SIGKILL: as abrupt as a crash).
    func kill() {
        process?.signal(SIGKILL)
        process?.waitForExit(timeout: 5)
        process = nil
    }

    func stop() {
        process?.stop(grace: 5)
        process = nil
    }

    /// Sends one inline command and returns the first reply line (without \r\n).
    func command(_ line: String) throws -> String {
        let client = try LineClient(port: port, connectTimeout: 1)
        defer { client.close() }
        if let password {
            try client.send("AUTH \(password)")
            _ = try client.readLine(timeout: 2)
        }
        try client.send(line)
        return try client.readLine(timeout: 2)
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(at: directory)
    }
}
