import CHeraldSystem
import Glibc
import HeraldCore
import HeraldLoop
import HeraldProtocol

/// How a herald process hands its options to a herald process it starts (the supervisor
/// to each worker, `herald start --daemon` to the supervisor): in an in-memory file
/// (`memfd_create`) the child inherits on the descriptor that `HERALD_ARGUMENTS_FD`
/// names, not on its command line, where `ps` shows a Redis password in `--redis
/// redis://:PASSWORD@…` to every user of the host. The child's argv holds the same
/// options with every secret redacted (`Secrets.redact`), so `ps` still shows what runs.
///
/// A descriptor rather than the environment: `/proc/<pid>/environ` is readable by the
/// same user and copied into every grandchild; the descriptor is read once at start,
/// closed, and reaches no other process.
public enum ArgumentChannel {
    public static let variable = "HERALD_ARGUMENTS_FD"
    /// The longest argument list accepted.
    static let maxBytes = 4 << 20

    public struct Failure: Error, CustomStringConvertible, Sendable {
        public let description: String
    }

    /// A new descriptor (close-on-exec, numbered above 10) holding `arguments`.
    public static func makeDescriptor(_ arguments: [String]) throws(Failure) -> Int32 {
        var bytes: [UInt8] = []
        JSONWriter.write(.array(arguments.map { .string($0) }), to: &bytes)
        let made = herald_memfd("herald-arguments")
        guard made >= 0 else { throw Failure(description: "memfd_create: \(SystemError("memfd_create"))") }
        let fd = herald_move_fd_above(made, 10)
        guard fd >= 0 else {
            close(made)
            throw Failure(description: "\(SystemError("fcntl(F_DUPFD_CLOEXEC)"))")
        }
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 {
                if errno == EINTR { continue }
                let error = SystemError("write(memfd)")
                close(fd)
                throw Failure(description: "\(error)")
            }
            offset += n
        }
        return fd
    }

    /// The arguments this process was given through `HERALD_ARGUMENTS_FD`, or nil when it
    /// was started without (by hand, or by an older supervisor). Closes the descriptor
    /// and removes the variable, so that nothing started from here inherits either.
    public static func receive(environment: [String: String]) throws(Failure) -> [String]? {
        guard let text = environment[variable] else { return nil }
        unsetenv(variable)
        guard let fd = Int32(text), fd > 2 else { throw Failure(description: "\(variable)=\(text) is not a descriptor") }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG, info.st_size <= maxBytes else {
            throw Failure(description: "\(variable)=\(fd) is not the arguments file herald passes")
        }
        var bytes = [UInt8](repeating: 0, count: Int(info.st_size))
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + offset, $0.count - offset, off_t(offset)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw Failure(description: "cannot read the arguments on \(variable)=\(fd)") }
            offset += n
        }
        guard case .array(let items)? = try? JSONParser.parse(bytes) else {
            throw Failure(description: "unreadable arguments on \(variable)=\(fd)")
        }
        var arguments: [String] = []
        for item in items {
            guard case .string(let argument) = item else { throw Failure(description: "unreadable arguments on \(variable)=\(fd)") }
            arguments.append(argument)
        }
        return arguments
    }

    /// Overwrites every secret in this process's own command line (what `ps` and
    /// `/proc/<pid>/cmdline` show) with `*`s, as `mysql -p` does. It was visible from
    /// the exec until now: `redisPasswordFile` keeps a password off command lines
    /// altogether.
    public static func maskOwnCommandLine() {
        let argv = CommandLine.unsafeArgv
        for index in 1..<Int(CommandLine.argc) {
            guard let pointer = argv[index] else { continue }
            let length = strlen(pointer)
            let original = String(decoding: UnsafeRawBufferPointer(start: pointer, count: length), as: UTF8.self)
            let redacted = Secrets.redact(original, wholeText: true)
            guard redacted != original else { continue }
            // Same length: mark each byte that changed (the secret) with '*'.
            let before = Array(original.utf8)
            let after = Array(redacted.utf8)
            var prefix = 0
            while prefix < min(before.count, after.count), before[prefix] == after[prefix] { prefix += 1 }
            var suffix = 0
            while suffix < min(before.count, after.count) - prefix,
                  before[before.count - 1 - suffix] == after[after.count - 1 - suffix] { suffix += 1 }
            for offset in prefix..<(before.count - suffix) { pointer[offset] = CChar(UInt8(ascii: "*")) }
        }
    }
}
