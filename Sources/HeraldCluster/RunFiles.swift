import Glibc

/// The pidfile and control socket through which the CLI finds a running supervisor.
///
/// They live in a run directory that only this user may use: anyone who can write
/// there could plant a symbolic link for the log, a pidfile, or a socket of their own
/// that answers `herald status` and swallows `herald stop`. So herald's own run
/// directory (`$HERALD_RUN_DIR`, `/run/herald`, `$XDG_RUNTIME_DIR/herald`,
/// `/tmp/herald-<uid>`) is created 0700 and refused unless it is a real directory owned
/// by this user with no access for others, as tmux and ssh-agent do. The directory of
/// an explicit `--pidfile` is the operator's choice: it is refused only when others may
/// write to it (unless it is sticky, like /tmp). In either, the pidfile and the control
/// socket are refused unless they are this user's own regular file and socket.
public struct RunFiles: Sendable, Equatable {
    public let pidfile: String
    /// Whether the directory is herald's own run directory (strict checks), rather than
    /// the directory of an explicit `--pidfile`.
    public let isOwnDirectory: Bool

    public init(pidfile: String, isOwnDirectory: Bool = false) {
        self.pidfile = pidfile
        self.isOwnDirectory = isOwnDirectory
    }

    /// `--pidfile`, else `$HERALD_RUN_DIR/herald.pid`, else `/run/herald/herald.pid` for
    /// root, `$XDG_RUNTIME_DIR/herald/herald.pid` or `/tmp/herald-<uid>/herald.pid`.
    public static func resolve(pidfile: String?, environment: [String: String]) -> RunFiles {
        if let pidfile { return RunFiles(pidfile: pidfile) }
        let directory: String
        if let dir = environment["HERALD_RUN_DIR"], !dir.isEmpty {
            directory = dir.count > 1 && dir.hasSuffix("/") ? String(dir.dropLast()) : dir
        } else if getuid() == 0 {
            directory = "/run/herald"
        } else if let runtime = environment["XDG_RUNTIME_DIR"], !runtime.isEmpty {
            directory = runtime + "/herald"
        } else {
            directory = "/tmp/herald-\(getuid())"
        }
        return RunFiles(pidfile: directory + "/herald.pid", isOwnDirectory: true)
    }

    /// The control socket beside the pidfile: `herald.pid` → `herald.sock`.
    public var controlSocket: String {
        (pidfile.hasSuffix(".pid") ? String(pidfile.dropLast(4)) : pidfile) + ".sock"
    }

    public var directory: String {
        guard let slash = pidfile.lastIndex(of: "/") else { return "." }
        return slash == pidfile.startIndex ? "/" : String(pidfile[..<slash])
    }

    /// The log file of `herald start --daemon` when none is configured.
    public var defaultLogFile: String { directory + "/herald.log" }

    // MARK: Checks

    /// Checks the directory and the files in it (and with `create`, first creates the
    /// directory, 0700). Throws an error that names the path and the fix. A directory
    /// that does not exist is fine without `create` (no supervisor runs).
    public func check(create: Bool) throws(RunFilesError) {
        if create { try makeDirectory() }
        guard try checkDirectory() else { return }
        try Self.checkOwnFile(pidfile, kind: "pidfile", type: S_IFREG)
        try Self.checkOwnFile(controlSocket, kind: "control socket", type: S_IFSOCK)
    }

    private func makeDirectory() throws(RunFilesError) {
        var path = ""
        let components = directory.split(separator: "/", omittingEmptySubsequences: true)
        for (index, component) in components.enumerated() {
            path += (path.isEmpty && !directory.hasPrefix("/") ? "" : "/") + component
            if mkdir(path, 0o700) != 0 && errno != EEXIST && index == components.count - 1 {
                throw RunFilesError(description: "cannot create the run directory \(directory): \(SystemErrorText.current)")
            }
        }
    }

    /// False when the directory does not exist.
    private func checkDirectory() throws(RunFilesError) -> Bool {
        var info = stat()
        if isOwnDirectory {
            guard lstat(directory, &info) == 0 else {
                if errno == ENOENT { return false }
                throw RunFilesError(description: "cannot check the run directory \(directory): \(SystemErrorText.current)")
            }
            let fix = "Remove it if it is not yours (rm -rf \(directory)), or choose another directory with HERALD_RUN_DIR or --pidfile."
            if info.st_mode & S_IFMT == S_IFLNK {
                throw RunFilesError(description: "unsafe run directory \(directory): it is a symbolic link, and herald's run directory must be a real directory only you can use. \(fix)")
            }
            guard info.st_mode & S_IFMT == S_IFDIR else {
                throw RunFilesError(description: "unsafe run directory \(directory): it is not a directory. \(fix)")
            }
            guard info.st_uid == geteuid() else {
                throw RunFilesError(description: "unsafe run directory \(directory): it is owned by uid \(info.st_uid), not by you (uid \(geteuid())); another user may have made it to catch herald's pidfile, log and control socket. \(fix)")
            }
            guard info.st_mode & 0o077 == 0 else {
                throw RunFilesError(description: "unsafe run directory \(directory): its mode is \(Self.octal(info.st_mode & 0o7777)), but other users must have no access to it (0700). Fix: chmod 700 \(directory)")
            }
            return true
        }
        guard stat(directory, &info) == 0 else {
            if errno == ENOENT { return false }
            throw RunFilesError(description: "cannot check the directory of \(pidfile): \(SystemErrorText.current)")
        }
        guard info.st_mode & S_IFMT == S_IFDIR else {
            throw RunFilesError(description: "the directory of the pidfile \(pidfile) is not a directory")
        }
        let writableByOthers = info.st_mode & 0o022 != 0 && info.st_mode & S_ISVTX == 0
        guard info.st_uid == geteuid() || info.st_uid == 0, !writableByOthers else {
            throw RunFilesError(description: "unsafe directory \(directory) for the pidfile \(pidfile): other users may write to it (owner uid \(info.st_uid), mode \(Self.octal(info.st_mode & 0o7777))), so they could replace herald's pidfile and control socket. Use a directory only you (or root) can write to, e.g. chmod go-w \(directory)")
        }
        return true
    }

    /// A file herald made must be this user's, of the given type, and not a link.
    private static func checkOwnFile(_ path: String, kind: String, type: mode_t) throws(RunFilesError) {
        var info = stat()
        guard lstat(path, &info) == 0 else {
            if errno == ENOENT { return }
            throw RunFilesError(description: "cannot check the \(kind) \(path): \(SystemErrorText.current)")
        }
        let fix = "Remove it (rm \(path)) if no herald of yours runs with it."
        if info.st_mode & S_IFMT == S_IFLNK {
            throw RunFilesError(description: "unsafe \(kind) \(path): it is a symbolic link. \(fix)")
        }
        guard info.st_mode & S_IFMT == type else {
            throw RunFilesError(description: "unsafe \(kind) \(path): it is not a \(type == S_IFSOCK ? "socket" : "regular file"). \(fix)")
        }
        guard info.st_uid == geteuid() else {
            throw RunFilesError(description: "unsafe \(kind) \(path): it is owned by uid \(info.st_uid), not by you (uid \(geteuid())); another user may have planted it. \(fix)")
        }
    }

    static func octal(_ mode: mode_t) -> String {
        let text = String(mode, radix: 8)
        return String(repeating: "0", count: max(0, 4 - text.count)) + text
    }

    // MARK: Pidfile

    /// The pid in the pidfile, when that process is alive. Only this user's own regular
    /// file counts (a link or another user's file is not read).
    public func runningPID() -> pid_t? {
        let fd = open(pidfile, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG, info.st_uid == geteuid() else { return nil }
        var buffer = [UInt8](repeating: 0, count: 32)
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard n > 0, let pid = pid_t(String(decoding: buffer[0..<n], as: UTF8.self).trimmingWhitespace),
              pid > 0, kill(pid, 0) == 0 || errno == EPERM else { return nil }
        return pid
    }

    /// Checks the run directory (creating it, 0700, if needed), then writes this
    /// process's pid; fails when another live supervisor holds the pidfile, other than
    /// `predecessor` (the old supervisor of a binary upgrade, whose pidfile this takes over).
    public func claim(replacing predecessor: pid_t? = nil) throws(RunFilesError) {
        try check(create: true)
        if let pid = runningPID(), pid != getpid(), pid != predecessor {
            throw RunFilesError(description: "another herald supervisor (pid \(pid)) holds \(pidfile); stop it first or use --pidfile")
        }
        // A new file (O_EXCL: never one planted under this name, nor through a link),
        // renamed over the pidfile (rename replaces a link, never follows it).
        let temporary = pidfile + ".\(getpid()).tmp"
        unlink(temporary)
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o644)
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
    public init(description: String) { self.description = description }
}

extension String {
    var trimmingWhitespace: String {
        var text = Substring(self)
        while let first = text.first, first.isWhitespace { text.removeFirst() }
        while let last = text.last, last.isWhitespace { text.removeLast() }
        return String(text)
    }
}
