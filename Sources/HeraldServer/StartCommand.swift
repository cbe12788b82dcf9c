import CHeraldSystem
import Glibc
import HeraldCluster
import HeraldCore
import HeraldLoop
import HeraldProtocol
import HeraldRedis

/// `herald start`: the supervisor. Binds the listening socket once, starts the workers
/// and runs until stopped (SIGTERM/SIGINT or `herald stop`).
enum StartCommand {
    static func main(_ given: [String]) -> Int32 {
        LogSetup.holdReopenSignal()
        holdUpgradeSignal()
        // Taken before anything is started, so that no child inherits NOTIFY_SOCKET.
        let notifier = SystemdNotifier.takeFromEnvironment()
        let options: StartOptions
        let configuration: Configuration
        let inheritance: UpgradeInheritance?
        do {
            // Started by `herald upgrade`: the old supervisor's sockets and channel.
            inheritance = try UpgradeInheritance.takeFromEnvironment(ProcessEnvironment.all)
            // `start --daemon` passes the options on a descriptor (ArgumentChannel).
            let arguments = try ArgumentChannel.receive(environment: ProcessEnvironment.all) ?? given
            guard let parsed = try StartOptions.parse(arguments) else {
                print(Usage.start)
                return 0
            }
            options = parsed
            configuration = try options.loader.load()
        } catch {
            printError("herald start: \(error)\nRun `herald start --help` for the options.")
            return 2
        }
        if options.daemon { return Daemon.start(options: options, configuration: configuration) }
        let runFiles = options.runFiles
        do {
            // Before the log: a default log file lives in the run directory.
            try runFiles.check(create: true)
        } catch {
            printError("herald start: \(error)")
            return 1
        }
        do {
            try LogSetup.configure(configuration, fields: [("role", "supervisor")])
        } catch {
            printError("herald start: cannot open the log: \(error)")
            return 2
        }
        if let inheritance {
            // The pidfile is taken over once the new workers serve (UpgradeSuccessor).
            do { try inheritance.handshake() } catch {
                log.error("upgrade.refused", ["reason": error.description])
                log.flush()
                printError("herald start (upgrade): \(error)")
                return 1
            }
        } else {
            do {
                try runFiles.claim()
            } catch {
                printError("herald start: \(error)")
                return 1
            }
        }
        // Released last, after the private redis-server has stopped: `herald stop` waits
        // for the pidfile to go.
        defer { runFiles.release() }
        // An upgrade keeps the number of workers the old supervisor ran (after any scale).
        var workers = inheritance?.slots.count ?? (configuration.workers == 0 ? ProcessEnvironment.cores : configuration.workers)
        do { _ = try Listeners.tlsContext(configuration) } catch {
            printError("herald start: \(error)")
            return 2
        }
        let backends: BackendPlan
        do { backends = try BackendPlan.choose(configuration, mayStartPrivateRedis: inheritance == nil) } catch {
            printError("herald start: \(error)")
            return 2
        }
        defer { backends.finish() }
        if backends.endpoint == nil && workers > 1 {
            // Rooms and the cache would split between workers: never run several on the
            // in-process backends.
            if configuration.workers != 0 {
                printError("herald start: \(workers) workers need a shared room bus and cache, and there is no Redis (\(backends.inProcessReason ?? "")); configure redisUrl or run with --workers 1")
                return 2
            }
            log.warn("cluster.workers.reduced", ["workers": "1", "cores": String(workers),
                                                 "reason": backends.inProcessReason ?? "no Redis"])
            workers = 1
        }
        return supervise(options: options, configuration: configuration, workers: workers, runFiles: runFiles,
                         backends: backends, notifier: notifier, inheritance: inheritance)
    }

    /// SIGUSR2 (binary upgrade) is held from the first moment too: its default action
    /// ends the process.
    static func holdUpgradeSignal() {
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGUSR2)
        sigprocmask(SIG_BLOCK, &set, nil)
    }

    static func supervise(options: StartOptions, configuration: Configuration, workers: Int, runFiles: RunFiles,
                          backends: BackendPlan, notifier: SystemdNotifier? = nil,
                          inheritance: UpgradeInheritance? = nil) -> Int32 {
        herald_ignore_sigpipe()
        let listenFDs: [Int32]
        do {
            // An upgrade's new supervisor binds nothing: it serves on the old one's sockets.
            listenFDs = try inheritance?.slots[0] ?? Listeners.bind(configuration)
        } catch {
            log.flush()
            printError("herald start: \(error)")
            return 1
        }
        let ports = listenFDs.map(Sockets.localPort(of:))
        nonisolated(unsafe) var exitStatus: Int32 = 0  // written on the loop thread, read after run() returns on it
        do {
            try EventLoop.current.run {
                var supervisorOptions = Supervisor.Options(
                    workers: workers, executable: ProcessSpawner.currentExecutable(),
                    workerArguments: ["worker"] + options.workerArguments, workerEnvironment: [:],
                    drainTimeoutMilliseconds: configuration.pendingShutdownWaitLimit)
                supervisorOptions.workerEnvironment["HERALD_WORKERS"] = String(workers)
                // The private redis-server, when the supervisor started one.
                if let url = backends.privateURL { supervisorOptions.workerEnvironment["HERALD_REDIS_URL"] = url }
                let bindSlot: SlotSockets.Bind = { _ in try Listeners.bind(configuration, ports: ports) }
                let sockets = inheritance.map { SlotSockets(inherited: $0.slots, bind: bindSlot) }
                    ?? SlotSockets(first: listenFDs, bind: bindSlot)
                let supervisor = Supervisor(options: supervisorOptions, sockets: sockets)
                let successor = inheritance.map { UpgradeSuccessor(inheritance: $0, supervisor: supervisor) }
                if let notifier { supervisor.upgradeEnvironment["NOTIFY_SOCKET"] = notifier.socketPath }
                if backends.privateRedis != nil {
                    supervisor.upgradeRefusal = "a binary upgrade needs a configured Redis (redisUrl): the private redis-server this supervisor started stops with it; use `herald reload` to deploy a new binary to the workers"
                }
                supervisor.statusFields = JSONObject([
                    ("redis", .string(backends.endpoint.map { "\($0)" + (backends.privateRedis == nil ? "" : " (private)") }
                                      ?? "none: in-process rooms and cache")),
                    ("ports", .string(ports.map(String.init).joined(separator: ","))),
                ])
                // A crashed worker's members leave their rooms at once, not when its
                // heartbeat expires.
                var evictorEndpoint = backends.endpoint
                var evictor = backends.endpoint.map { RedisWorkerEvictor(endpoint: $0) }
                supervisor.onWorkerCrashed = { evictor?.evict(workerID: $0) }
                let control = ControlHolder()
                @LoopActor func openControl() throws {
                    control.server = try ControlServer(path: runFiles.controlSocket) { words, reply in
                        ControlCommands.handle(words, reply: reply, supervisor: supervisor)
                    }
                }
                supervisor.onMilestone = { milestone in
                    if let successor, !successor.isCommitted {
                        // Until it has taken over, the old supervisor speaks for the service.
                        guard milestone == .serving else { return }
                        successor.commit {
                            try runFiles.claim(replacing: successor.predecessor)
                            try openControl()
                            // NotifyAccess=all: systemd follows the new main process.
                            notifier?.send("MAINPID=\(getpid())\n" + SystemdNotifier.message(for: .serving, workers: supervisor.workerCount))
                        }
                        return
                    }
                    notifier?.send(SystemdNotifier.message(for: milestone, workers: supervisor.workerCount))
                }
                supervisor.validateReload = {
                    do {
                        let configuration = try options.loader.load()
                        _ = try Listeners.tlsContext(configuration)  // a renewed certificate must load
                        // A renewed password file must read; the supervisor's own
                        // connection takes the new password too.
                        if let endpoint = try RedisEndpoint.from(configuration), evictor != nil,
                           endpoint != evictorEndpoint {
                            evictor?.stop()
                            evictor = RedisWorkerEvictor(endpoint: endpoint)
                            evictorEndpoint = endpoint
                        }
                        return nil
                    } catch {
                        return Secrets.redact("\(error)")
                    }
                }
                if successor == nil { try openControl() }
                // GET /metrics and /health (metricsPort; off by default).
                let respond: @LoopActor (String) -> MetricsServer.Response = { supervisor.metricsResponse(path: $0) }
                let metricsServer = try configuration.metricsPort == 0 ? nil
                    : inheritance?.metricsFD.map { try MetricsServer(listening: $0, handle: respond) }
                      ?? MetricsServer(host: configuration.metricsBind, port: configuration.metricsPort, handle: respond)
                if let metricsServer {
                    supervisor.upgradeDescriptors = [(UpgradeChannel.metricsVariable, metricsServer.listeningDescriptor)]
                }
                _ = try SignalWatcher(signals: [SIGTERM, SIGINT, SIGHUP, SIGTTIN, SIGTTOU, SIGCHLD, SIGUSR1, SIGUSR2]) { delivery in
                    switch delivery.signal {
                    case SIGCHLD: supervisor.reapChildren()
                    case SIGUSR1: supervisor.reopenLogs()
                    case SIGUSR2: supervisor.upgrade(waiting: nil)
                    case SIGHUP: supervisor.reload()
                    case SIGTTIN: supervisor.scale(to: (supervisor.workerCount) + 1)
                    case SIGTTOU: supervisor.scale(to: supervisor.workerCount - 1)
                    default:
                        log.info("cluster.signal", ["signal": String(delivery.signal)])
                        supervisor.stop()
                    }
                }
                supervisor.start { status in
                    exitStatus = status
                    evictor?.stop()
                    // After an upgrade the path is the new supervisor's.
                    control.server?.close(unlinking: !supervisor.isRetiredByUpgrade)
                    metricsServer?.close()
                    EventLoop.current.stop()
                }
                successor?.start(readyMilliseconds: supervisorOptions.readyTimeoutMilliseconds + 5_000)
                log.info("cluster.listening", ["bind": configuration.bind, "port": String(ports[0]),
                                               "tlsPort": ports.count > 1 ? String(ports[1]) : "none",
                                               "secure": String(configuration.secure), "pidfile": runFiles.pidfile, "control": runFiles.controlSocket,
                                               "metrics": metricsServer.map { "\(configuration.metricsBind):\($0.port)" } ?? "off"])
            }
        } catch {
            log.error("cluster.start.failed", ["error": "\(error)"])
            exitStatus = 1
        }
        log.flush()
        return exitStatus
    }
}

/// What the control socket understands.
enum ControlCommands {
    /// `reload`, `scale N` and `upgrade` take `--wait [MILLISECONDS]`: the answer comes
    /// once the command has finished (Supervisor+Waiting.swift).
    @LoopActor
    static func handle(_ words: [Substring], reply: ControlReply, supervisor: Supervisor) {
        var words = words
        var wait = false
        var timeout: Int?
        if let flag = words.firstIndex(of: "--wait") {
            wait = true
            if flag + 1 < words.count {
                guard let milliseconds = Int(words[flag + 1]), milliseconds >= 1_000, milliseconds <= 86_400_000 else {
                    return reply.send(error: "--wait takes a timeout in milliseconds from 1000 to 86400000")
                }
                timeout = milliseconds
            }
            words.removeSubrange(flag...)
        }
        switch words.first {
        case "status": reply.send(supervisor.status)
        case "reload":
            if wait { supervisor.reload(waiting: reply, timeoutMilliseconds: timeout) } else { reply.send(error: supervisor.reload()) }
        case "upgrade":
            if let refusal = supervisor.upgrade(waiting: wait ? reply : nil, timeoutMilliseconds: timeout) {
                reply.send(error: refusal)
            } else if !wait {
                reply.send(error: nil)
            }
        case "stop":
            supervisor.stop()
            reply.send(error: nil)
        case "scale":
            guard words.count == 2, let count = Int(words[1]), count >= 1, count <= 1_024 else {
                return reply.send(error: "scale takes a worker count from 1 to 1024")
            }
            if wait { supervisor.scale(to: count, waiting: reply, timeoutMilliseconds: timeout) } else {
                if supervisor.isUpgrading { return reply.send(error: "a binary upgrade is under way") }
                supervisor.scale(to: count)
                reply.send(error: nil)
            }
        default:
            reply.send(error: "unknown command '\(words.joined(separator: " "))' (status, reload, stop, scale N, upgrade)")
        }
    }
}

/// The control socket, opened at start, or by an upgrade's new supervisor once it takes over.
@LoopActor
final class ControlHolder {
    var server: ControlServer?
}
