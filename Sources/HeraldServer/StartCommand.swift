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
        // Taken before anything is started, so that no child inherits NOTIFY_SOCKET.
        let notifier = SystemdNotifier.takeFromEnvironment()
        let options: StartOptions
        let configuration: Configuration
        do {
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
        do {
            try runFiles.claim()
        } catch {
            printError("herald start: \(error)")
            return 1
        }
        // Released last, after the private redis-server has stopped: `herald stop` waits
        // for the pidfile to go.
        defer { runFiles.release() }
        var workers = configuration.workers == 0 ? ProcessEnvironment.cores : configuration.workers
        do { _ = try Listeners.tlsContext(configuration) } catch {
            printError("herald start: \(error)")
            return 2
        }
        let backends: BackendPlan
        do { backends = try BackendPlan.choose(configuration, mayStartPrivateRedis: true) } catch {
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
                         backends: backends, notifier: notifier)
    }

    static func supervise(options: StartOptions, configuration: Configuration, workers: Int, runFiles: RunFiles,
                          backends: BackendPlan, notifier: SystemdNotifier? = nil) -> Int32 {
        herald_ignore_sigpipe()
        let listenFDs: [Int32]
        do {
            listenFDs = try Listeners.bind(configuration)
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
                let sockets = SlotSockets(first: listenFDs) { _ in try Listeners.bind(configuration, ports: ports) }
                let supervisor = Supervisor(options: supervisorOptions, sockets: sockets)
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
                if let notifier {
                    supervisor.onMilestone = { notifier.send(SystemdNotifier.message(for: $0, workers: supervisor.workerCount)) }
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
                let control = try ControlServer(path: runFiles.controlSocket) { words in
                    ControlCommands.handle(words, supervisor: supervisor)
                }
                // GET /metrics and /health (metricsPort; off by default).
                let metricsServer = try configuration.metricsPort == 0 ? nil
                    : MetricsServer(host: configuration.metricsBind, port: configuration.metricsPort) { path in
                        supervisor.metricsResponse(path: path)
                    }
                _ = try SignalWatcher(signals: [SIGTERM, SIGINT, SIGHUP, SIGTTIN, SIGTTOU, SIGCHLD, SIGUSR1]) { delivery in
                    switch delivery.signal {
                    case SIGCHLD: supervisor.reapChildren()
                    case SIGUSR1: supervisor.reopenLogs()
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
                    control.close()
                    metricsServer?.close()
                    EventLoop.current.stop()
                }
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
    @LoopActor
    static func handle(_ words: [Substring], supervisor: Supervisor) -> JSON {
        func result(_ error: String?) -> JSON {
            if let error { return .object(JSONObject([("ok", .bool(false)), ("error", .string(error))])) }
            return .object(JSONObject([("ok", .bool(true))]))
        }
        switch words.first {
        case "status": return supervisor.status
        case "reload": return result(supervisor.reload())
        case "stop":
            supervisor.stop()
            return result(nil)
        case "scale":
            guard words.count == 2, let count = Int(words[1]), count >= 1, count <= 1_024 else {
                return result("scale takes a worker count from 1 to 1024")
            }
            supervisor.scale(to: count)
            return result(nil)
        default:
            return result("unknown command '\(words.joined(separator: " "))' (status, reload, stop, scale N)")
        }
    }
}
