enum Usage {
    static let version = "0.1.0"

    static let main = """
    herald \(version): a clustered socket API server (ActionHero's socket protocol, in Swift)

    Usage: herald <command> [options]

    Commands:
      start      run the server (see `herald start --help`)
      bench      the load tool: rr, fanout, idle (see `herald bench --help`)
      console    talk to a server: interactive on a terminal, one reply per line from a pipe
                 (see `herald console --help`)
      help       this text
      version    print the version

    Docs: docs/ in the source tree (protocol, configuration, operations, actions).
    """

    static let start = """
    Usage: herald start [options]

    Runs the server in the foreground until SIGTERM or SIGINT (graceful stop: pending
    replies are delivered, every client gets the goodbye, then the process exits).

    Options (each overrides the config files and HERALD_* environment variables):
      --port N             TCP port to listen on (default 5000; 0 picks a free port)
      --bind ADDRESS       address to bind (default 0.0.0.0; "::" for IPv4 and IPv6)
      --workers N          worker processes (this version serves with exactly 1)
      --config FILE        a JSON file of settings, applied after config/ files
      --config-dir DIR     where default.json and <env>.json are (default ./config)
      --env NAME           which <env>.json to apply (default $HERALD_ENV or development)
      --set KEY=VALUE      any setting (repeatable), e.g. --set maxLineBytes=65536
      --log-level LEVEL    debug, info, warn or error (default info)
      --log FILE           write the log to FILE instead of stderr
      -h, --help           this text

    Settings: \(SettingsList.text)
    """
}
