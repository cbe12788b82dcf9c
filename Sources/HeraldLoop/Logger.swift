import CHeraldSystem
import Glibc
import Synchronization

/// Log severity, lowest first.
public enum LogLevel: Int, Sendable, Comparable, CaseIterable {
    case debug, info, warn, error

    public init?(name: String) {
        switch name.lowercased() {
        case "debug": self = .debug
        case "info": self = .info
        case "warn", "warning": self = .warn
        case "error": self = .error
        default: return nil
        }
    }

    public var name: String {
        switch self {
        case .debug: "debug"
        case .info: "info"
        case .warn: "warn"
        case .error: "error"
        }
    }

    public static func < (a: LogLevel, b: LogLevel) -> Bool { a.rawValue < b.rawValue }
}

/// How a line is written.
public enum LogFormat: Sendable {
    /// `<UTC time> level=<level> event=<event> key=value …`
    case text
    /// One JSON object per line: `{"time":…,"level":…,"event":…,"key":"value",…}`, every
    /// value a string. `writeString` writes one JSON string, quotes included (the server
    /// passes `JSONWriter.writeString`; this module does not depend on the protocol one).
    case json(writeString: @Sendable (String, inout [UInt8]) -> Void)
}

/// One line per event: `<UTC time> level=<level> event=<event> key=value …` (or the same
/// fields as a JSON object), to stderr or a file. Lines are buffered and written once per
/// loop iteration (`flush()`); warnings and errors are written at once.
public final class Logger: Sendable {
    public static let shared = Logger()

    private struct State {
        var level: LogLevel = .info
        var fd: Int32 = 2
        var buffer: [UInt8] = []
        var fields: [(String, String)] = []
        var format: LogFormat = .text
        /// The log file's path, for `reopen()`; nil for stderr.
        var path: String?
        /// Whether standard output and error are the log file too (a daemon's are): a
        /// reopen points them at the new file as well.
        var standardStreamsAreLog = false
    }
    private let state = Mutex(State())

    public init() {}

    public var level: LogLevel { state.withLock { $0.level } }

    /// Sets the threshold, the destination (nil: stderr), fields added to every line and
    /// the format.
    public func configure(level: LogLevel, file: String?, fields: [(String, String)] = [],
                          format: LogFormat = .text) throws(SystemError) {
        var fd: Int32 = 2
        let path = file.flatMap { $0.isEmpty ? nil : $0 }
        if let path { fd = try Self.openLogFile(path) }
        let streamsAreLog = path != nil && Self.sameFile(fd, 2)
        flush()
        state.withLock {
            if $0.fd != 2 { close($0.fd) }
            $0.level = level
            $0.fd = fd
            $0.fields = fields
            $0.format = format
            $0.path = path
            $0.standardStreamsAreLog = streamsAreLog
        }
    }

    /// Opens the log file again by its path (SIGUSR1, after logrotate renamed it): lines
    /// from now on go to the file now at that path. On failure the old file stays in use
    /// and the error is returned. Does nothing when the log is stderr.
    @discardableResult
    public func reopen() -> SystemError? {
        guard let path = state.withLock({ $0.path }) else { return nil }
        let fd: Int32
        do { fd = try Self.openLogFile(path) } catch { return error }
        flush()
        state.withLock {
            if $0.standardStreamsAreLog {
                _ = dup2(fd, 1)
                _ = dup2(fd, 2)
            }
            if $0.fd != 2 { close($0.fd) }
            $0.fd = fd
        }
        return nil
    }

    /// Whether two descriptors are the same regular file.
    private static func sameFile(_ a: Int32, _ b: Int32) -> Bool {
        var first = stat(), second = stat()
        guard fstat(a, &first) == 0, fstat(b, &second) == 0, first.st_mode & S_IFMT == S_IFREG else { return false }
        return first.st_dev == second.st_dev && first.st_ino == second.st_ino
    }

    /// Opens a log file for appending (creating it 0644). A symbolic link in its place
    /// is refused (O_NOFOLLOW): whoever planted it would choose the file herald writes.
    /// Only a regular file, a FIFO or a character device (`/dev/null`) is written to.
    public static func openLogFile(_ path: String) throws(SystemError) -> Int32 {
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY, 0o644)
        if fd < 0 {
            let error = herald_errno()
            if error == ELOOP {
                throw SystemError("log file \(path) is a symbolic link, which herald does not follow (point logFile at the file itself, or remove the link)", errno: error)
            }
            throw SystemError("open(\(path))", errno: error)
        }
        var info = stat()
        let type = fstat(fd, &info) == 0 ? info.st_mode & S_IFMT : 0
        guard type == S_IFREG || type == S_IFIFO || type == S_IFCHR else {
            close(fd)
            throw SystemError("log file \(path) is not a regular file", errno: EINVAL)
        }
        // Blocking writes from here on (O_NONBLOCK only kept a FIFO's open from hanging).
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)
        return fd
    }

    @inline(__always)
    public func isEnabled(_ level: LogLevel) -> Bool { state.withLock { level >= $0.level } }

    public func debug(_ event: String, _ fields: KeyValuePairs<String, String> = [:]) { log(.debug, event, fields) }
    public func info(_ event: String, _ fields: KeyValuePairs<String, String> = [:]) { log(.info, event, fields) }
    public func warn(_ event: String, _ fields: KeyValuePairs<String, String> = [:]) { log(.warn, event, fields) }
    public func error(_ event: String, _ fields: KeyValuePairs<String, String> = [:]) { log(.error, event, fields) }

    public func log(_ level: LogLevel, _ event: String, _ fields: KeyValuePairs<String, String>) {
        state.withLock { state in
            guard level >= state.level else { return }
            if case .json(let writeString) = state.format {
                Self.appendJSON(level, event, fields, writeString, to: &state)
                if level >= .warn || state.buffer.count > 32_768 { Self.write(&state) }
                return
            }
            Self.appendTimestamp(to: &state.buffer)
            Self.append(" level=", to: &state.buffer)
            Self.append(level.name, to: &state.buffer)
            Self.append(" event=", to: &state.buffer)
            Self.append(event, to: &state.buffer)
            for (key, value) in state.fields { Self.appendField(key, value, to: &state.buffer) }
            for (key, value) in fields { Self.appendField(key, value, to: &state.buffer) }
            state.buffer.append(UInt8(ascii: "\n"))
            if level >= .warn || state.buffer.count > 32_768 { Self.write(&state) }
        }
    }

    /// Writes buffered lines.
    public func flush() {
        state.withLock { state in
            if !state.buffer.isEmpty { Self.write(&state) }
        }
    }

    private static func write(_ state: inout State) {
        let fd = state.fd
        state.buffer.withUnsafeBytes { bytes in
            var offset = 0
            while offset < bytes.count {
                let n = Glibc.write(fd, bytes.baseAddress! + offset, bytes.count - offset)
                if n < 0 { if herald_errno() == EINTR { continue }; break }
                offset += n
            }
        }
        state.buffer.removeAll(keepingCapacity: state.buffer.capacity <= 65_536)
    }

    private static func appendJSON(_ level: LogLevel, _ event: String, _ fields: KeyValuePairs<String, String>,
                                   _ writeString: (String, inout [UInt8]) -> Void, to state: inout State) {
        state.buffer.append(contentsOf: #"{"time":""#.utf8)
        appendTimestamp(to: &state.buffer)
        state.buffer.append(contentsOf: #"","level":""#.utf8)
        state.buffer.append(contentsOf: level.name.utf8)
        state.buffer.append(contentsOf: #"","event":"#.utf8)
        writeString(event, &state.buffer)
        func field(_ key: String, _ value: String, _ buffer: inout [UInt8]) {
            buffer.append(UInt8(ascii: ","))
            writeString(key, &buffer)
            buffer.append(UInt8(ascii: ":"))
            writeString(value, &buffer)
        }
        for (key, value) in state.fields { field(key, value, &state.buffer) }
        for (key, value) in fields { field(key, value, &state.buffer) }
        state.buffer.append(contentsOf: "}\n".utf8)
    }

    private static func append(_ text: String, to buffer: inout [UInt8]) {
        buffer.append(contentsOf: text.utf8)
    }

    private static func appendField(_ key: String, _ value: String, to buffer: inout [UInt8]) {
        buffer.append(UInt8(ascii: " "))
        buffer.append(contentsOf: key.utf8)
        buffer.append(UInt8(ascii: "="))
        let needsQuotes = value.isEmpty || value.utf8.contains { $0 <= 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "=") || $0 == 0x7f }
        guard needsQuotes else {
            buffer.append(contentsOf: value.utf8)
            return
        }
        buffer.append(UInt8(ascii: "\""))
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"):
                buffer.append(UInt8(ascii: "\\")); buffer.append(byte)
            case UInt8(ascii: "\n"): buffer.append(contentsOf: "\\n".utf8)
            case UInt8(ascii: "\r"): buffer.append(contentsOf: "\\r".utf8)
            case 0..<0x20, 0x7f:
                let hex = Array("0123456789abcdef".utf8)
                buffer.append(contentsOf: "\\x".utf8)
                buffer.append(hex[Int(byte >> 4)]); buffer.append(hex[Int(byte & 15)])
            default: buffer.append(byte)
            }
        }
        buffer.append(UInt8(ascii: "\""))
    }

    /// `2026-11-21T23:59:00.123Z`
    private static func appendTimestamp(to buffer: inout [UInt8]) {
        let ms = Clock.wallMillis()
        var seconds = time_t(ms / 1000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func two(_ v: Int32) { buffer.append(UInt8(48 + v / 10)); buffer.append(UInt8(48 + v % 10)) }
        let year = Int(parts.tm_year) + 1900
        buffer.append(contentsOf: String(year).utf8)
        buffer.append(UInt8(ascii: "-")); two(parts.tm_mon + 1)
        buffer.append(UInt8(ascii: "-")); two(parts.tm_mday)
        buffer.append(UInt8(ascii: "T")); two(parts.tm_hour)
        buffer.append(UInt8(ascii: ":")); two(parts.tm_min)
        buffer.append(UInt8(ascii: ":")); two(parts.tm_sec)
        let millis = Int32(ms % 1000)
        buffer.append(UInt8(ascii: "."))
        buffer.append(UInt8(48 + millis / 100)); two(millis % 100)
        buffer.append(UInt8(ascii: "Z"))
    }
}

/// The process's logger.
public let log = Logger.shared
