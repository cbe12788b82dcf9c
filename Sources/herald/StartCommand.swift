import CHeraldSystem
import Glibc
import HeraldActions
import HeraldCore
import HeraldLoop
import HeraldProtocol

/// `herald start`: load the configuration, bind, and serve until told to stop.
enum StartCommand {
    static func main(_ arguments: [String]) -> Int32 {
        let loader: ConfigurationLoader
        do {
            guard let parsed = try parseOptions(arguments) else {
                print(Usage.start)
                return 0
            }
            loader = parsed
        } catch {
            printError("herald start: \(error)\nRun `herald start --help` for the options.\n")
            return 2
        }
        let configuration: Configuration
        do {
            configuration = try loader.load()
        } catch {
            printError("herald start: \(error)\n")
            return 2
        }
        if configuration.workers != 1 {
            printError("herald start: this version runs exactly one worker (workers=\(configuration.workers)); the cluster supervisor is not built yet\n")
            return 2
        }
        do {
            try log.configure(level: LogLevel(name: configuration.logLevel) ?? .info, file: configuration.logFile)
        } catch {
            printError("herald start: cannot open the log: \(error)\n")
            return 2
        }
        return serve(configuration)
    }

    /// Parses the options into a loader; nil when help was asked for.
    static func parseOptions(_ arguments: [String]) throws(OptionParser.Failure) -> ConfigurationLoader? {
        let environment = ProcessEnvironment.all
        var loader = ConfigurationLoader(environmentName: environment["HERALD_ENV"] ?? "development", environment: environment)
        var configDirectory: String? = environment["HERALD_CONFIG_DIR"]
        var parser = OptionParser(arguments)
        try parser.parse { (name, value) throws(OptionParser.Failure) -> Bool in
            switch name {
            case "--port": loader.overrides.append(("port", ConfigurationLoader.value(fromText: try value())))
            case "--bind": loader.overrides.append(("bind", .string(try value())))
            case "--workers": loader.overrides.append(("workers", ConfigurationLoader.value(fromText: try value())))
            case "--log-level": loader.overrides.append(("logLevel", .string(try value())))
            case "--log": loader.overrides.append(("logFile", .string(try value())))
            case "--secure": loader.overrides.append(("secure", .bool(true)))
            case "--cert": loader.overrides.append(("certFile", .string(try value())))
            case "--key": loader.overrides.append(("keyFile", .string(try value())))
            case "--ca": loader.overrides.append(("caFile", .string(try value())))
            case "--tls-port": loader.overrides.append(("tlsPort", ConfigurationLoader.value(fromText: try value())))
            case "--tls-bind": loader.overrides.append(("tlsBind", .string(try value())))
            case "--config": loader.configFile = try value()
            case "--config-dir": configDirectory = try value()
            case "--env": loader.environmentName = try value()
            case "--set":
                let setting = try value()
                guard let equals = setting.firstIndex(of: "="), equals != setting.startIndex else {
                    throw OptionParser.Failure(description: "--set takes KEY=VALUE, not '\(setting)'")
                }
                loader.overrides.append((String(setting[..<equals]),
                                         ConfigurationLoader.value(fromText: String(setting[setting.index(after: equals)...]))))
            default: return false
            }
            return true
        }
        if parser.wantsHelp { return nil }
        if let configDirectory {
            loader.configDirectory = configDirectory
        } else if access("config", F_OK) == 0 {
            loader.configDirectory = "config"
        }
        return loader
    }

    static func serve(_ configuration: Configuration) -> Int32 {
        herald_ignore_sigpipe()
        Sockets.raiseOpenFileLimit()
        let listeners: [BoundListener]
        do {
            listeners = try Listeners.open(configuration)
        } catch {
            log.flush()
            printError("herald start: \(error)\n")
            return 1
        }
        let serverID = "\(ProcessEnvironment.hostname)-\(getpid())"
        var exitStatus: Int32 = 0
        do {
            try EventLoop.current.run {
                let worker = Worker(configuration: configuration, actions: ActionRegistry(BuiltinActions.all),
                                    cache: MemoryCache(), bus: InProcessBus(), serverID: serverID)
                try worker.start(listening: listeners.map { $0.listeningSocket(configuration) },
                                 acceptOnePerWake: false) {
                    EventLoop.current.stop()
                }
                var signals = 0
                let watcher = try SignalWatcher(signals: [SIGTERM, SIGINT]) { delivery in
                    signals += 1
                    if signals > 1 {
                        log.warn("server.forced.exit", ["signal": String(delivery.signal)])
                        log.flush()
                        exit(1)
                    }
                    log.info("server.signal", ["signal": String(delivery.signal)])
                    worker.stop()
                }
                _ = watcher
                log.info("server.start", ["serverId": serverID, "bind": configuration.bind,
                                          "port": String(listeners[0].port), "workers": "1",
                                          "bus": "in-process", "cache": "in-process"])
                for listener in listeners where listener.tls != nil {
                    log.info("server.tls", ["bind": listener.bind, "port": String(listener.port),
                                            "cert": configuration.certFile, "minVersion": configuration.tlsMinVersion,
                                            "clientCertificates": configuration.caFile.isEmpty ? "no" : "required"])
                }
            }
        } catch {
            log.error("server.start.failed", ["error": "\(error)"])
            exitStatus = 1
        }
        log.flush()
        return exitStatus
    }
}

/// The process environment and host name.
enum ProcessEnvironment {
    static var all: [String: String] {
        var result: [String: String] = [:]
        var pointer = environ
        while let entry = pointer.pointee {
            let text = String(decoding: UnsafeRawBufferPointer(start: entry, count: strlen(entry)), as: UTF8.self)
            if let equals = text.firstIndex(of: "=") {
                result[String(text[..<equals])] = String(text[text.index(after: equals)...])
            }
            pointer += 1
        }
        return result
    }

    static var hostname: String {
        var buffer = [UInt8](repeating: 0, count: 256)
        gethostname(&buffer, 255)
        return String(decoding: buffer.prefix { $0 != 0 }, as: UTF8.self)
    }
}
