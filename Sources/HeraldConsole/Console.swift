import Dispatch
import Glibc
import HeraldClient
import HeraldProtocol

/// `herald console`: a session with a server, for people (a TTY) or for scripts (a pipe).
public enum Console {
    public static let usage = """
    Usage: herald console [--host H] [--port P] [--tls [--ca FILE | --insecure]]
                          [--timeout SECONDS] [--window N]

    Talks to a Herald (ActionHero socket) server. On a terminal: a prompt with line
    editing and history, pretty-printed colored replies, chat messages as they arrive,
    `help` for the verbs and the server's actions. Fed from a pipe: one compact JSON
    reply per input line, in input order, and chat lines as they arrive; at end of
    input it waits for the outstanding replies and exits 0 (1 on a timeout, a refused
    connection or a closed connection).

    Options:
      --host H           server host (default 127.0.0.1)
      --port P           server port (default 5000)
      --tls              connect with TLS, verifying the server's certificate against
                         the system trust store and the host name
      --ca FILE          with --tls: trust only the CA certificates in FILE (PEM),
                         e.g. a self-signed server certificate (implies --tls)
      --insecure         with --tls: do not verify the server's certificate at all;
                         for development only (implies --tls)
      --timeout SECONDS  how long to wait for each reply (default 30)
      --window N         pipe mode: requests in flight at once (default 1)
      -h, --help         this text
    """

    struct Settings {
        var host = "127.0.0.1"
        var port = 5000
        var tls = false
        var caFile: String?
        var insecure = false

        /// The connector the options ask for.
        var connector: HeraldConnector {
            guard tls else { return .tcp }
            if insecure { return .tls(.insecure) }
            if let caFile { return .tls(.caFile(caFile)) }
            return .tls()
        }
        var timeout: Duration = .seconds(30)
        var window = 1
    }

    /// Parses `arguments`, runs the session, and returns the exit status.
    public static func main(_ arguments: [String]) -> Int32 {
        var settings = Settings()
        var index = 0
        func value(_ name: String) -> String? {
            index += 1
            return index < arguments.count ? arguments[index] : nil
        }
        while index < arguments.count {
            var argument = arguments[index]
            var inline: String?
            if argument.hasPrefix("--"), let eq = argument.firstIndex(of: "=") {
                inline = String(argument[argument.index(after: eq)...])
                argument = String(argument[..<eq])
            }
            switch argument {
            case "-h", "--help":
                print(usage)
                return 0
            case "--tls":
                settings.tls = true
            case "--ca":
                guard let v = inline ?? value(argument), !v.isEmpty else { return usageError("--ca needs a file") }
                settings.caFile = v
                settings.tls = true
            case "--insecure":
                settings.insecure = true
                settings.tls = true
            case "--host":
                guard let v = inline ?? value(argument) else { return usageError("--host needs a value") }
                settings.host = v
            case "--port":
                guard let v = inline ?? value(argument), let p = Int(v), (1...65535).contains(p) else {
                    return usageError("--port needs a port number")
                }
                settings.port = p
            case "--timeout":
                guard let v = inline ?? value(argument), let s = Double(v), s > 0 else {
                    return usageError("--timeout needs a positive number of seconds")
                }
                settings.timeout = .milliseconds(Int64(s * 1000))
            case "--window":
                guard let v = inline ?? value(argument), let n = Int(v), n > 0 else {
                    return usageError("--window needs a positive number")
                }
                settings.window = n
            default:
                return usageError("unknown option '\(arguments[index])'")
            }
            index += 1
        }
        if settings.insecure && settings.caFile != nil {
            return usageError("--ca and --insecure exclude each other")
        }
        let done = DispatchSemaphore(value: 0)
        let interactive = isatty(0) == 1 && isatty(1) == 1
        let box = StatusBox()
        Task {
            let code = interactive ? await Interactive.run(settings) : await PipeMode.run(settings)
            box.set(code)
            done.signal()
        }
        done.wait()
        return box.get()
    }

    private static func usageError(_ message: String) -> Int32 {
        Output.error("herald console: \(message)\n\n\(usage)")
        return 2
    }
}

final class StatusBox: Sendable {
    private let value = Locked<Int32>(1)
    func set(_ v: Int32) { value.withLock { $0 = v } }
    func get() -> Int32 { value.withLock { $0 } }
}

/// Whole-line writes to stdout and stderr (one `write` each, so lines never interleave).
enum Output {
    private static let lock = Locked(())

    static func line(_ text: String) { emit(1, text + "\n") }
    static func error(_ text: String) { emit(2, text.hasSuffix("\n") ? text : text + "\n") }

    static func emit(_ fd: Int32, _ text: String) {
        lock.withLock { _ in
            var bytes = Array(text.utf8)
            var offset = 0
            while offset < bytes.count {
                let n = bytes.withUnsafeMutableBytes { Glibc.write(fd, $0.baseAddress! + offset, $0.count - offset) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { return }
                offset += n
            }
            bytes.removeAll()
        }
    }
}

/// Lines from stdin, split exactly as the server splits them (`\r`, `\n`, any mix),
/// read on their own thread.
func stdinLines() -> AsyncStream<String> {
    let (stream, sink) = AsyncStream.makeStream(of: String.self, bufferingPolicy: .unbounded)
    Thread.start {
        var framer = LineFramer(maxLineBytes: 64 << 20)
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(0, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            buffer.withUnsafeBytes { raw in
                framer.feed(UnsafeRawBufferPointer(rebasing: raw[0..<n])) { event in
                    if case .line(let bytes) = event { sink.yield(String(decoding: bytes, as: UTF8.self)) }
                    return true
                }
            }
        }
        sink.finish()
    }
    return stream
}

enum Thread {
    /// Runs `body` on a new detached thread.
    static func start(_ body: @escaping @Sendable () -> Void) {
        final class Box: Sendable {
            let body: @Sendable () -> Void
            init(_ body: @escaping @Sendable () -> Void) { self.body = body }
        }
        let box = Unmanaged.passRetained(Box(body)).toOpaque()
        var thread = pthread_t()
        let rc = pthread_create(&thread, nil, { argument in
            Unmanaged<Box>.fromOpaque(argument!).takeRetainedValue().body()
            return nil
        }, box)
        precondition(rc == 0, "pthread_create failed: \(rc)")
        pthread_detach(thread)
    }
}

/// The first word of a line, as the server reads it.
func firstWord(_ line: String) -> Substring {
    line.prefix { $0 != " " }
}

func isQuit(_ line: String) -> Bool {
    ["quit", "exit", "close"].contains(firstWord(line))
}

func connect(_ settings: Console.Settings, reconnect: ReconnectPolicy?) async -> HeraldClient? {
    do {
        let options = HeraldClientOptions(connector: settings.connector, connectTimeout: .seconds(5),
                                          requestTimeout: settings.timeout, reconnect: reconnect)
        return try await HeraldClient.connect(host: settings.host, port: settings.port, options: options)
    } catch {
        Output.error("herald console: cannot connect to \(settings.host):\(settings.port): \(error)")
        return nil
    }
}

/// Scripts: stdin is not a terminal.
enum PipeMode {
    static func run(_ settings: Console.Settings) async -> Int32 {
        guard let client = await connect(settings, reconnect: nil) else { return 1 }
        let chat = Task {
            for await message in client.messages { Output.line(Pretty.compact(message.raw)) }
        }
        defer { chat.cancel() }
        var window: [Task<Result<JSONObject, HeraldClientError>, Never>] = []
        var status: Int32 = 0

        /// Prints the oldest reply; false when the session cannot go on.
        func drainOne() async -> Bool {
            let result = await window.removeFirst().value
            switch result {
            case .success(let reply):
                Output.line(Pretty.compact(reply))
                return true
            case .failure(let error):
                Output.error("herald console: \(error)")
                switch error {
                case .invalidRequest:
                    status = 1
                    return true
                default:
                    status = 1
                    return false
                }
            }
        }

        for await line in stdinLines() {
            if isQuit(line) {
                while !window.isEmpty { if !(await drainOne()) { return 1 } }
                let reason = await client.disconnect()
                if let reason { Output.line(#"{"status":"Bye!","context":"api","reason":"# + String(describing: JSON.string(reason)) + "}") }
                return status
            }
            let timeout = settings.timeout
            window.append(Task {
                do throws(HeraldClientError) {
                    return .success(try await client.send(line, timeout: timeout))
                } catch {
                    return .failure(error)
                }
            })
            while window.count >= settings.window {
                if !(await drainOne()) {
                    await client.disconnect(timeout: .seconds(1))
                    return 1
                }
            }
        }
        while !window.isEmpty {
            if !(await drainOne()) {
                await client.disconnect(timeout: .seconds(1))
                return 1
            }
        }
        await client.disconnect()
        return status
    }
}
