import Glibc
import HeraldCluster
import HeraldCore
import HeraldLoop

/// `herald start --daemon`: starts the supervisor detached (its own session, standard
/// streams to the log) and returns once it has written its pidfile.
enum Daemon {
    static func start(options: StartOptions, configuration: Configuration) -> Int32 {
        let runFiles = options.runFiles
        if let pid = runFiles.runningPID() {
            printError("herald start: a supervisor (pid \(pid)) already runs with \(runFiles.pidfile)")
            return 1
        }
        var arguments = options.workerArguments
        var logFile = configuration.logFile
        if logFile.isEmpty {
            logFile = runFiles.directory + "/herald.log"
            arguments += ["--log", logFile]
        }
        if options.pidfile == nil { arguments += ["--pidfile", runFiles.pidfile] }
        mkdir(runFiles.directory, 0o700)
        let devNull = open("/dev/null", O_RDWR | O_CLOEXEC)
        let logFD = open(logFile, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard devNull >= 0, logFD >= 0 else {
            printError("herald start: cannot open \(logFile) for the daemon's output")
            return 1
        }
        let executable = ProcessSpawner.currentExecutable()
        let pid: pid_t
        do {
            pid = try ProcessSpawner.spawn(path: executable, arguments: [executable, "start"] + arguments,
                                           environment: ProcessSpawner.environment(with: [:]),
                                           descriptors: [(devNull, 0), (logFD, 1), (logFD, 2)], newSession: true)
        } catch {
            printError("herald start: cannot start the daemon: \(error)")
            return 1
        }
        // Wait until it has claimed the pidfile and opened its control socket.
        for _ in 0..<150 {
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) == pid {
                printError("herald start: the daemon exited (\(ProcessSpawner.describe(waitStatus: status))); see \(logFile)")
                return 1
            }
            if runFiles.runningPID() == pid && access(runFiles.controlSocket, F_OK) == 0 {
                print("herald started: pid \(pid), pidfile \(runFiles.pidfile), log \(logFile)")
                return 0
            }
            usleep(100_000)
        }
        printError("herald start: the daemon (pid \(pid)) did not come up within 15 s; see \(logFile)")
        return 1
    }
}
