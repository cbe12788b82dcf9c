import Glibc

/// The pidfile and control socket through which the CLI finds a running supervisor.
public struct RunFiles: Sendable, Equatable {
    public let pidfile: String

    public init(pidfile: String) { self.pidfile = pidfile }

    /// `--pidfile`, else `$HERALD_RUN_DIR/herald.pid`, else `/run/herald/herald.pid` for
    /// root, `$XDG_RUNTIME_DIR/herald/herald.pid` or `/tmp/herald-<uid>/herald.pid`.
    public static func resolve(pidfile: String?, environment: [String: String]) -> RunFiles {
        if let pidfile { return RunFiles(pidfile: pidfile) }
        let directory: String
        if let dir = environment["HERALD_RUN_DIR"], !dir.isEmpty {
            directory = dir
        } else if getuid() == 0 {
            directory = "/run/herald"
        } else if let runtime = environment["XDG_RUNTIME_DIR"], !runtime.isEmpty {
            directory = runtime + "/herald"
        } else {
            directory = "/tmp/herald-\(getuid())"
        }
        return RunFiles(pidfile: directory + "/herald.pid")
    }

    /// The control socket beside the pidfile: `herald.pid` → `herald.sock`.
    public var controlSocket: String {
        (pidfile.hasSuffix(".pid") ? String(pidfile.dropLast(4)) : pidfile) + ".sock"
    }

    public var directory: String {
        guard let slash = pidfile.lastIndex(of: "/") else { return "." }
        return slash == pidfile.startIndex ? "/" : String(pidfile[..<slash])
    }

    /// The pid in the pidfile, when that process is alive.
    public func runningPID() -> pid_t? {
        let fd = open(pidfile, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 32)
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard n > 0, let pid = pid_t(String(decoding: buffer[0..<n], as: UTF8.self).trimmingWhitespace),
              pid > 0, kill(pid, 0) == 0 || errno == EPERM else { return nil }
        return pid
    }

    /// Writes this process's pid (creating the directory, 0700, if needed); fails when
    /// another live supervisor holds the pidfile.
    public func claim() throws(RunFilesError) {
        if let pid = runningPID(), pid != getpid() {
            throw RunFilesError(description: "another herald supervisor (pid \(pid)) holds \(pidfile); stop it first or use --pidfile")
        }
        var path = ""
        for component in directory.split(separator: "/", omittingEmptySubsequences: false) {
            path += (path.isEmpty && component.isEmpty) ? "/" : (path.hasSuffix("/") || path.isEmpty ? "" : "/") + component
            if !path.isEmpty { mkdir(path, 0o700) }
        }
        let temporary = pidfile + ".\(getpid()).tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw RunFilesError(description: "cannot write \(temporary): \(SystemErrorText.current)") }
        let text = Array("\(getpid())\n".utf8)
        _ = text.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
        guard rename(temporary, pidfile) == 0 else {
            unlink(temporary)
            throw RunFilesError(description: "cannot write \(pidfile): \(SystemErrorText.current)")
        }
    }

    /// Removes the pidfile if it is still this process's.
    public func release() {
        if runningPID() == getpid() { unlink(pidfile) }
    }
}

public struct RunFilesError: Error, CustomStringConvertible, Sendable {
    public let description: String
}

extension String {
    var trimmingWhitespace: String {
        var text = Substring(self)
        while let first = text.first, first.isWhitespace { text.removeFirst() }
        while let last = text.last, last.isWhitespace { text.removeLast() }
        return String(text)
    }
}
