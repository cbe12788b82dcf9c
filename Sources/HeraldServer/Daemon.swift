import Glibc
import HeraldCluster
import HeraldCore
import HeraldLoop

/// `herald start --daemon`: starts the supervisor detached (its own session, standard
/// streams to the log) and returns once it has written its pidfile.
enum Daemon {
    static func start(options: StartOptions, configuration: Configuration) -> Int32 {
        let runFiles = options.runFiles
        do {
            try runFiles.check(create: true)  // before anything is written there
        } catch {
            printError("herald start: \(error)")
            return 1
        }
        if let pid = runFiles.runningPID() {
            printError("herald start: a supervisor (pid \(pid)) already runs with \(runFiles.pidfile)")
            return 1
        }
        var arguments = options.workerArguments
        var logFile = configuration.logFile
        if logFile.isEmpty {
            logFile = runFiles.defaultLogFile
            arguments += ["--log", logFile]
        }
        if options.pidfile == nil { arguments += ["--pidfile", runFiles.pidfile] }
        let devNull = open("/dev/null", O_RDWR | O_CLOEXEC)
        let logFD: Int32
        do {
            logFD = try Logger.openLogFile(logFile)
        } catch {
            printError("herald start: cannot open the log for the daemon's output: \(error)")
            return 1
        }
        guard devNull >= 0 else {
            printError("herald start: cannot open /dev/null")
            return 1
        }
        // The options (secrets included) go on a descriptor; argv shows them redacted.
        let argumentsFD: Int32
        do {
            argumentsFD = try ArgumentChannel.makeDescriptor(arguments)
        } catch {
            printError("herald start: cannot start the daemon: \(error)")
            return 1
        }
        let executable = ProcessSpawner.currentExecutable()
        let pid: pid_t
        do {
            pid = try ProcessSpawner.spawn(path: executable,
                                           arguments: [executable, "start"] + Secrets.redact(arguments: arguments),
                                           environment: ProcessSpawner.environment(with: [ArgumentChannel.variable: "3"]),
                                           descriptors: [(devNull, 0), (logFD, 1), (logFD, 2), (argumentsFD, 3)],
                                           newSession: true)
        } catch {
            printError("herald start: cannot start the daemon: \(error)")
            return 1
        }
        close(argumentsFD)
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
