import CHeraldSystem
import Glibc

/// Starting child processes with `posix_spawn`: nothing of the parent's threads or
/// Swift runtime state crosses into the child, signals start at their defaults.
public enum ProcessSpawner {
    /// Starts `path` with `arguments` (argv[0] included) and `environment`
    /// (`NAME=value` entries); `descriptors` maps parent fds to the child's fd numbers.
    public static func spawn(path: String, arguments: [String], environment: [String],
                             descriptors: [(parent: Int32, child: Int32)] = [],
                             newSession: Bool = false) throws(SystemError) -> pid_t {
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        var envp: [UnsafeMutablePointer<CChar>?] = environment.map { strdup($0) } + [nil]
        defer {
            for pointer in argv { free(pointer) }
            for pointer in envp { free(pointer) }
        }
        let from = descriptors.map(\.parent)
        let to = descriptors.map(\.child)
        var pid: pid_t = 0
        let status = from.withUnsafeBufferPointer { fromBuffer in
            to.withUnsafeBufferPointer { toBuffer in
                herald_spawn(&pid, path, &argv, &envp, fromBuffer.baseAddress, toBuffer.baseAddress,
                             Int32(descriptors.count), newSession ? 1 : 0)
            }
        }
        if status != 0 { throw SystemError("posix_spawn(\(path))", errno: status) }
        return pid
    }

    /// The running executable's path on disk, as it is now ("/proc/self/exe").
    public static func currentExecutable() -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let count = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard count > 0 else { return CommandLine.arguments[0] }
        var path = String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        if path.hasSuffix(" (deleted)") { path.removeLast(" (deleted)".count) }
        return path
    }

    /// `NAME=value` entries of this process's environment, with `changes` applied
    /// (a nil value removes the variable).
    public static func environment(with changes: [String: String?]) -> [String] {
        var result: [String] = []
        var pointer = environ
        while let entry = pointer.pointee {
            let text = String(decoding: UnsafeRawBufferPointer(start: entry, count: strlen(entry)), as: UTF8.self)
            let name = text.split(separator: "=", maxSplits: 1).first.map(String.init) ?? text
            if changes[name] == nil { result.append(text) }
            pointer += 1
        }
        for (name, value) in changes.sorted(by: { $0.key < $1.key }) {
            if let value { result.append("\(name)=\(value)") }
        }
        return result
    }

    /// Describes a wait status: "exit 0", "signal 9 (SIGKILL)".
    public static func describe(waitStatus status: Int32) -> String {
        if status & 0x7f == 0 { return "exit \((status >> 8) & 0xff)" }
        let signal = status & 0x7f
        let names: [Int32: String] = [SIGKILL: "SIGKILL", SIGTERM: "SIGTERM", SIGSEGV: "SIGSEGV", SIGABRT: "SIGABRT",
                                      SIGILL: "SIGILL", SIGBUS: "SIGBUS", SIGINT: "SIGINT", SIGTRAP: "SIGTRAP"]
        return "signal \(signal)" + (names[signal].map { " (\($0))" } ?? "")
    }
}
