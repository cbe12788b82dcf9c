enum Usage {
    static let version = "0.2.0-dev"

    /// The main help text, with the binary's extra commands (e.g. `bench`) listed after
    /// `scale`.
    static func main(_ extra: [HeraldCommand]) -> String {
        let lines = extra.map { command in
            let pad = String(repeating: " ", count: max(1, 11 - command.name.count))
            return "  \(command.name)\(pad)\(command.summary)\n"
        }.joined()
        return mainHead + "\n" + lines + mainTail
    }

    static let mainHead = """
    herald \(version): a clustered socket API server (ActionHero's socket protocol, in Swift)

    Usage: herald <command> [options]

    Commands:
      start      run the cluster: a supervisor and its workers (`herald start --help`)
      stop       stop a running cluster gracefully
      reload     rolling reload: new workers (new binary, new configuration) replace the old one by one
      status     the supervisor and each worker: pid, server id, uptime, connections, rooms
      scale N    run N workers
      upgrade    binary upgrade: a new supervisor from the binary on disk takes over the
                 listening sockets, the old one hands its workers over and exits
    """

    static let mainTail = """
      console    talk to a server: interactive on a terminal, one reply per line from a pipe
                 (see `herald console --help`)
      help       this text
      version    print the version

    Common start options: --port N (default 5000), --bind ADDRESS, --workers N,
    --config FILE, --set KEY=VALUE, --daemon, --pidfile FILE, --log FILE.

    Docs: docs/ in the source tree (protocol, configuration, operations, actions).
    """

    static let start = """
    Usage: herald start [options]

    Runs the cluster in the foreground until SIGTERM or SIGINT (graceful stop: pending
    replies are delivered, every client gets the goodbye, then the processes exit): a
    supervisor that binds the port once and the worker processes that serve it.
    Signals to the supervisor: TERM/INT stop, HUP rolling reload, TTIN/TTOU one worker
    more/fewer, USR1 reopen the log file (after logrotate; passed on to the workers),
    USR2 binary upgrade (as `herald upgrade`).

    Options (each overrides the config files and HERALD_* environment variables):
      --port N             TCP port to listen on (default 5000; 0 picks a free port)
      --bind ADDRESS       address to bind (default 0.0.0.0; "::" for IPv4 and IPv6)
      --workers N          worker processes (default: one per core)
      --daemon             detach; the log goes to --log FILE (default beside the pidfile)
      --pidfile FILE       where the supervisor writes its pid; its control socket is
                           beside it (FILE with .sock for .pid). Default:
                           $HERALD_RUN_DIR, /run/herald (root), $XDG_RUNTIME_DIR/herald
                           or /tmp/herald-<uid>, then /herald.pid. That directory is
                           created 0700 and refused unless it is yours and 0700
      --config FILE        a JSON file of settings, applied after config/ files
      --config-dir DIR     where default.json and <env>.json are (default ./config)
      --env NAME           which <env>.json to apply (default $HERALD_ENV or development)
      --set KEY=VALUE      any setting (repeatable), e.g. --set maxLineBytes=65536
      --log-level LEVEL    debug, info, warn or error (default info)
      --log FILE           write the log to FILE instead of stderr
      --log-format FORMAT  text (default: key=value) or json (one object per line)
      --redis URL          redis://host:port[/db] or unix:///path.sock[?db=N] (the
                           redisUrl setting); a password goes in a file named by
                           --set redisPasswordFile=FILE. No Redis configured: a private
                           redis-server is started when installed, else one worker runs
                           on in-process backends
      --secure             the main port speaks TLS (needs --cert and --key)
      --cert FILE          PEM certificate (chain) for TLS
      --key FILE           PEM private key for TLS
      --ca FILE            require client certificates signed by these PEM CAs
      --tls-port N         an additional TLS listener beside the main port (0: none)
      --tls-bind ADDRESS   address of the TLS listener (default: same as --bind)
      --metrics-port N     serve GET /metrics (Prometheus) and /health on this port (0: off)
      --metrics-bind ADDR  address of the metrics port (default: 127.0.0.1)
      -h, --help           this text

    Settings: \(SettingsList.text)
    """

    static let cluster = """
    Usage: herald stop|reload|status|upgrade [--pidfile FILE] [--json]
           herald scale N [--pidfile FILE]
           herald reload|scale N|upgrade --wait [--timeout SECONDS]

    Finds the supervisor through its pidfile (see `herald start --help` for the default)
    and sends the command over its control socket.
      stop      graceful stop; waits until the supervisor has exited (--no-wait: don't)
      reload    rolling reload: each worker is replaced by one started from the binary on
                disk with the configuration re-read; the old one drains only once the new
                one accepts, so no connect is refused
      status    the supervisor and its workers (--json: the raw reply)
      scale N   start or stop workers until N run
      upgrade   binary upgrade (like nginx's USR2): the binary on disk is started as a new
                supervisor with the same options; it inherits the listening sockets (no
                connect is refused), starts its workers, takes over the pidfile and the
                control socket; the old supervisor hands its workers over and exits. If
                the new one fails, the old one keeps serving. Needs a configured Redis
    --wait      (reload, scale, upgrade) return once every old worker has exited: exit 0,
                or 1 with the reason the command failed
    --timeout S how long --wait waits (default: ready time + pendingShutdownWaitLimit
                + 30 s)
    """
}
