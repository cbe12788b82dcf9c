import Glibc
import HeraldCluster
import HeraldCore

/// The options of `herald start` (and of the workers it starts, which get the same
/// ones so that they read the same configuration).
struct StartOptions {
    var loader: ConfigurationLoader
    var daemon = false
    var pidfile: String?
    /// The options as given, less `--daemon`: what workers are started with.
    var workerArguments: [String] = []

    var runFiles: RunFiles { RunFiles.resolve(pidfile: pidfile, environment: ProcessEnvironment.all) }

    /// Parses the options; nil when help was asked for.
    static func parse(_ arguments: [String]) throws(OptionParser.Failure) -> StartOptions? {
        let environment = ProcessEnvironment.all
        var options = StartOptions(loader: ConfigurationLoader(environmentName: environment["HERALD_ENV"] ?? "development",
                                                               environment: environment))
        var configDirectory: String? = environment["HERALD_CONFIG_DIR"]
        var parser = OptionParser(arguments)
        try parser.parse { (name, value) throws(OptionParser.Failure) -> Bool in
            switch name {
            case "--port": options.loader.overrides.append(("port", ConfigurationLoader.value(fromText: try value())))
            case "--bind": options.loader.overrides.append(("bind", .string(try value())))
            case "--workers": options.loader.overrides.append(("workers", ConfigurationLoader.value(fromText: try value())))
            case "--log-level": options.loader.overrides.append(("logLevel", .string(try value())))
            case "--log": options.loader.overrides.append(("logFile", .string(try value())))
            case "--log-format": options.loader.overrides.append(("logFormat", .string(try value())))
            case "--redis": options.loader.overrides.append(("redisUrl", .string(try value())))
            case "--config": options.loader.configFile = absolute(try value())
            case "--config-dir": configDirectory = absolute(try value())
            case "--env": options.loader.environmentName = try value()
            case "--pidfile": options.pidfile = absolute(try value())
            case "--daemon": options.daemon = true
            case "--secure": options.loader.overrides.append(("secure", .bool(true)))
            case "--cert": options.loader.overrides.append(("certFile", .string(absolute(try value()))))
            case "--key": options.loader.overrides.append(("keyFile", .string(absolute(try value()))))
            case "--ca": options.loader.overrides.append(("caFile", .string(absolute(try value()))))
            case "--tls-port": options.loader.overrides.append(("tlsPort", ConfigurationLoader.value(fromText: try value())))
            case "--metrics-port": options.loader.overrides.append(("metricsPort", ConfigurationLoader.value(fromText: try value())))
            case "--metrics-bind": options.loader.overrides.append(("metricsBind", .string(try value())))
            case "--tls-bind": options.loader.overrides.append(("tlsBind", .string(try value())))
            case "--set":
                let setting = try value()
                guard let equals = setting.firstIndex(of: "="), equals != setting.startIndex else {
                    throw OptionParser.Failure(description: "--set takes KEY=VALUE, not '\(setting)'")
                }
                options.loader.overrides.append((String(setting[..<equals]),
                                                 ConfigurationLoader.value(fromText: String(setting[setting.index(after: equals)...]))))
            default: return false
            }
            return true
        }
        if parser.wantsHelp { return nil }
        if let configDirectory {
            options.loader.configDirectory = configDirectory
        } else if access("config", F_OK) == 0 {
            options.loader.configDirectory = "config"
        }
        options.workerArguments = arguments.filter { $0 != "--daemon" }
        return options
    }

    /// A path made absolute against the working directory, so a daemon finds it too.
    static func absolute(_ path: String) -> String {
        guard !path.hasPrefix("/") else { return path }
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX))
        guard getcwd(&buffer, buffer.count) != nil else { return path }
        let cwd = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return cwd + "/" + path
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

    static var cores: Int { max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN))) }
}
