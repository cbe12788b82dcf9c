import CHeraldSystem
import Glibc
import HeraldCluster
import HeraldCore
import HeraldLoop

/// `herald worker`: a worker process started by the supervisor, serving on the
/// listening sockets it inherited, with the same options as `herald start`.
enum WorkerCommand {
    static func main(_ given: [String], actions: [Action]) -> Int32 {
        LogSetup.holdReopenSignal()
        guard let environment = WorkerEnvironment.fromProcess(ProcessEnvironment.all) else {
            printError("herald worker: this command is started by `herald start`, not by hand")
            return 2
        }
        // Die with the supervisor (the signal is a graceful stop), also if it is
        // already gone.
        _ = herald_set_parent_death_signal(SIGTERM)
        guard getppid() == environment.supervisorPID else { return 1 }
        let configuration: Configuration
        let backends: BackendPlan
        do {
            // The supervisor passes the options (secrets included) on a descriptor; argv
            // has them redacted (ArgumentChannel).
            let arguments = try ArgumentChannel.receive(environment: ProcessEnvironment.all) ?? given
            guard let options = try StartOptions.parse(arguments) else { return 2 }
            configuration = try options.loader.load()
            try LogSetup.configure(configuration, fields: [("worker", String(environment.index)), ("pid", String(getpid()))])
            // Reads redisPasswordFile as it is now: a reload picks up a new password.
            backends = try BackendPlan.forWorker(configuration)
        } catch {
            printError("herald worker: \(error)")
            return 2
        }
        return serve(configuration, backends: backends, actions: actions, listenFDs: environment.listenFDs,
                     controlFD: environment.controlFD)
    }

    /// Serves until stopped: on the given listening sockets, reporting to the
    /// supervisor through `controlFD` when there is one.
    static func serve(_ configuration: Configuration, backends: BackendPlan, actions: [Action], listenFDs: [Int32],
                      controlFD: Int32?) -> Int32 {
        herald_ignore_sigpipe()
        herald_return_large_frees()
        Sockets.raiseOpenFileLimit()
        // Host, pid and a random part: unique across hosts, and a later process that gets
        // the same pid is still another worker.
        let serverID = "\(ProcessEnvironment.hostname)-\(getpid())-\(String(UInt32.random(in: 0x1000_0000...UInt32.max), radix: 16))"
        var exitStatus: Int32 = 0
        do {
            try EventLoop.current.run {
                let (bus, cache, stopCache, backendName) = backends.make(serverID: serverID)
                let worker = Worker(configuration: configuration, actions: ActionRegistry(actions),
                                    cache: cache, bus: bus, serverID: serverID)
                let reporter = try controlFD.map { fd throws(SystemError) in try WorkerReporter(fd: fd, worker: worker) }
                let sockets = try Listeners.sockets(configuration, listenFDs: listenFDs)
                try worker.start(listening: sockets) {
                    reporter?.stop()
                    stopCache()
                    EventLoop.current.stop()
                }
                var signals = 0
                _ = try SignalWatcher(signals: [SIGTERM, SIGINT, SIGUSR1]) { delivery in
                    if delivery.signal == SIGUSR1 {
                        // logrotate renamed the file (the supervisor passes the signal on).
                        if let error = log.reopen() {
                            log.error("log.reopen.failed", ["error": error.description])
                        } else {
                            log.info("log.reopened", [:])
                        }
                        return
                    }
                    signals += 1
                    if signals > 1 && delivery.signal == SIGINT {
                        log.warn("server.forced.exit", ["signal": String(delivery.signal)])
                        log.flush()
                        exit(1)
                    }
                    log.info("server.signal", ["signal": String(delivery.signal)])
                    worker.stop()
                }
                log.info("server.start", ["serverId": serverID, "port": String(Sockets.localPort(of: listenFDs[0])),
                                          "bus": backendName, "cache": backendName])
                reporter?.ready()
            }
        } catch {
            log.error("server.start.failed", ["error": "\(error)"])
            exitStatus = 1
        }
        log.flush()
        return exitStatus
    }
}
