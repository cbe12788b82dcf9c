import HeraldProtocol

/// Everything a worker is configured with. Flat keys: the same names are used in the
/// JSON config files, as `--set key=value`, and as `HERALD_<KEY_IN_SNAKE_CASE>` variables.
public struct Configuration: Sendable, Equatable {
    public var port = 5000
    public var bind = "0.0.0.0"
    /// Worker processes; 0 means one per core.
    public var workers = 0
    public var welcomeMessage = ReplyWriter.defaultWelcome
    /// The room every new connection joins; "" for none.
    public var defaultRoom = "defaultRoom"
    public var announceJoinLeave = false
    public var maxLineBytes = 1_048_576
    public var simultaneousActions = 5
    public var maxStickyParams = 1_000
    /// Sticky params are counted as JSON-encoded (`"key":"value",`, escapes included), so
    /// that `paramsView` and `detailsView` stay under `maxOutputBytes`: all of a
    /// connection's params together, and one param.
    /// Counted JSON-encoded (as paramsView sends them). The defaults accept any value
    /// that fits in a default line, even one of control bytes (6 bytes each encoded), as
    /// PROTOCOL.md promises; a reply that would pass maxOutputBytes becomes an error.
    public var maxStickyParamBytes = 8_388_608
    public var maxStickyParamValueBytes = 8_388_608
    /// Rooms one connection may be in at once, and the longest room name.
    public var maxRoomsPerConnection = 100
    public var maxRoomNameBytes = 256
    /// The longest chat line a `say` may produce, JSON-encoded as each member gets it.
    public var maxSayBytes = 65_536
    public var maxOutputBytes = 1_048_576
    /// Milliseconds a started line has to end; 0 is off.
    public var lineTimeout = 30_000
    /// Milliseconds without input after which a connection (with nothing pending) is
    /// closed; 0 is off.
    public var idleTimeout = 0
    /// Milliseconds a connection whose input is held for its output backlog may go
    /// without reading any of that output before it is dropped; 0 is off.
    public var outputStallTimeout = 10_000
    /// Milliseconds a client that closed its sending side (FIN) waits for the replies it
    /// is owed; then its pending actions are cancelled and the connection closed. A
    /// server cannot tell a half-close from a full close, so this bounds what a client
    /// that simply went away leaves running.
    public var halfClosedWaitLimit = 10_000
    public var maxConnections = 100_000
    public var pendingShutdownWaitLimit = 5_000
    /// Milliseconds between keep-alive lines; 0 is off.
    public var keepAliveInterval = 0
    public var publicDir = "public"
    public var logLevel = "info"
    /// Log destination; "" is stderr.
    public var logFile = ""
    /// Log line format: "text" (key=value) or "json" (one object per line).
    public var logFormat = "text"
    /// `connection.open` / `connection.close` lines a worker writes one by one per second
    /// (each); past it, a summary line a second (`ConnectionLog`). 0: summaries only.
    public var connectionLogRate = 100
    /// Redis by URL: `redis://[:password@]host:port[/db]` or `unix:///path/to.sock[?db=N]`.
    /// Takes precedence over the separate redis settings. No Redis configured at all:
    /// `herald start` runs a private redis-server, or one worker on in-process backends.
    public var redisUrl = ""
    public var redisHost = ""
    public var redisPort = 6379
    public var redisSocket = ""
    public var redisPassword = ""
    /// A file holding the Redis password (read at start and at each reload), so that the
    /// password is on no command line; "" for none.
    public var redisPasswordFile = ""
    public var redisDatabase = 0
    /// Prefix of every Redis key and channel, so that two clusters can share one Redis.
    public var redisPrefix = "herald:"
    /// TLS (see docs/configuration.md, "TLS"). The main port speaks TLS.
    public var secure = false
    /// PEM certificate (chain) and private key for every TLS listener.
    public var certFile = ""
    public var keyFile = ""
    /// PEM CA certificates: when set, TLS clients must present a certificate they signed.
    public var caFile = ""
    /// An additional TLS listener beside the main port; 0 is none.
    public var tlsPort = 0
    /// Address of the additional TLS listener; "" is the same as `bind`.
    public var tlsBind = ""
    /// Milliseconds a TLS client has to finish its handshake.
    public var tlsHandshakeTimeout = 10_000
    /// OpenSSL cipher list for TLS 1.2; "" keeps OpenSSL's recommended default.
    public var tlsCiphers = ""
    /// Oldest TLS version accepted: "1.2" or "1.3".
    public var tlsMinVersion = "1.2"
    /// Port of the supervisor's HTTP responder for `/metrics` and `/health`; 0 is off.
    public var metricsPort = 0
    /// Address of the metrics responder (loopback by default: the counters are not public).
    public var metricsBind = "127.0.0.1"

    /// Whether any listener speaks TLS.
    public var usesTLS: Bool { secure || tlsPort != 0 }

    public init() {}

    /// True when some Redis setting names a server.
    public var hasRedis: Bool { !redisUrl.isEmpty || !redisHost.isEmpty || !redisSocket.isEmpty }

    /// Every key, in the order `herald config` and the docs list them.
    public static let keys: [String] = [
        "port", "bind", "workers", "welcomeMessage", "defaultRoom", "announceJoinLeave",
        "maxLineBytes", "simultaneousActions", "maxStickyParams", "maxStickyParamBytes", "maxStickyParamValueBytes",
        "maxRoomsPerConnection", "maxRoomNameBytes", "maxSayBytes",
        "maxOutputBytes", "lineTimeout", "idleTimeout", "outputStallTimeout", "halfClosedWaitLimit", "maxConnections", "pendingShutdownWaitLimit", "keepAliveInterval",
        "publicDir", "logLevel", "logFile", "logFormat", "connectionLogRate",
        "redisUrl", "redisHost", "redisPort", "redisSocket", "redisPassword", "redisPasswordFile",
        "redisDatabase", "redisPrefix",
        "secure", "certFile", "keyFile", "caFile", "tlsPort", "tlsBind", "tlsHandshakeTimeout",
        "tlsCiphers", "tlsMinVersion",
        "metricsPort", "metricsBind",
    ]

    /// Sets one key from a JSON value (numbers and booleans may also come as strings).
    public mutating func set(_ key: String, _ value: JSON, source: String) throws(ConfigurationError) {
        // A secret is never echoed in an error.
        let shown = Secrets.keys.contains(key) ? "***" : Self.describe(value)
        func int(min: Int, max: Int = Configuration.defaultMaximum) throws(ConfigurationError) -> Int {
            // Int(exactly:) is nil for NaN, infinities, fractions and anything out of
            // Int's range: no input can trap here.
            guard let number = value.numberValue, let whole = Int(exactly: number), whole >= min, whole <= max else {
                throw ConfigurationError("\(source): \(key) must be a whole number from \(min) to \(max), not \(shown)")
            }
            return whole
        }
        func string() throws(ConfigurationError) -> String {
            let text: String
            switch value {
            case .string(let string): text = string
            case .number: text = Self.describe(value)
            default: throw ConfigurationError("\(source): \(key) must be a string, not \(shown)")
            }
            // C functions (paths, addresses, AUTH) would stop at a NUL byte.
            guard !text.utf8.contains(0) else {
                throw ConfigurationError("\(source): \(key) must not contain a NUL byte")
            }
            return text
        }
        func bool() throws(ConfigurationError) -> Bool {
            switch value {
            case .bool(let flag): return flag
            case .string("true"), .string("1"), .string("yes"): return true
            case .string("false"), .string("0"), .string("no"): return false
            default: throw ConfigurationError("\(source): \(key) must be true or false, not \(shown)")
            }
        }
        switch key {
        case "port": port = try int(min: 0, max: 65_535)
        case "bind": bind = try string()
        case "workers": workers = try int(min: 0, max: 1_024)
        case "welcomeMessage": welcomeMessage = try string()
        case "defaultRoom": defaultRoom = try string()
        case "announceJoinLeave": announceJoinLeave = try bool()
        case "maxLineBytes": maxLineBytes = try int(min: 1, max: 1_073_741_824)
        case "simultaneousActions": simultaneousActions = try int(min: 1, max: 10_000)
        case "maxStickyParams": maxStickyParams = try int(min: 1, max: 1_000_000)
        case "maxStickyParamBytes": maxStickyParamBytes = try int(min: 1, max: 1_073_741_824)
        case "maxStickyParamValueBytes": maxStickyParamValueBytes = try int(min: 1, max: 1_073_741_824)
        case "maxRoomsPerConnection": maxRoomsPerConnection = try int(min: 1, max: 100_000)
        case "maxRoomNameBytes": maxRoomNameBytes = try int(min: 1, max: 65_536)
        case "maxSayBytes": maxSayBytes = try int(min: 256, max: 16_777_216)
        case "maxOutputBytes": maxOutputBytes = try int(min: 1_024, max: 1_073_741_824)
        case "lineTimeout": lineTimeout = try int(min: 0, max: 86_400_000)
        case "idleTimeout": idleTimeout = try int(min: 0, max: 604_800_000)
        case "outputStallTimeout": outputStallTimeout = try int(min: 0, max: 86_400_000)
        case "halfClosedWaitLimit": halfClosedWaitLimit = try int(min: 0, max: 86_400_000)
        case "maxConnections": maxConnections = try int(min: 1, max: 10_000_000)
        case "pendingShutdownWaitLimit": pendingShutdownWaitLimit = try int(min: 0, max: 3_600_000)
        case "keepAliveInterval": keepAliveInterval = try int(min: 0, max: 86_400_000)
        case "publicDir": publicDir = try string()
        case "logLevel":
            let name = try string()
            guard LogLevelName.isValid(name) else {
                throw ConfigurationError("\(source): logLevel must be debug, info, warn or error, not \(name)")
            }
            logLevel = name
        case "logFile": logFile = try string()
        case "connectionLogRate": connectionLogRate = try int(min: 0, max: 10_000_000)
        case "logFormat":
            let name = try string()
            guard name == "text" || name == "json" else {
                throw ConfigurationError("\(source): logFormat must be text or json, not \(name)")
            }
            logFormat = name
        case "redisUrl": redisUrl = try string()
        case "redisHost": redisHost = try string()
        case "redisPort": redisPort = try int(min: 1, max: 65_535)
        case "redisSocket": redisSocket = try string()
        case "redisPassword": redisPassword = try string()
        case "redisPasswordFile": redisPasswordFile = try string()
        case "redisDatabase": redisDatabase = try int(min: 0, max: 1_000_000)
        case "redisPrefix": redisPrefix = try string()
        case "secure": secure = try bool()
        case "certFile": certFile = try string()
        case "keyFile": keyFile = try string()
        case "caFile": caFile = try string()
        case "tlsPort": tlsPort = try int(min: 0, max: 65_535)
        case "tlsBind": tlsBind = try string()
        case "tlsHandshakeTimeout": tlsHandshakeTimeout = try int(min: 1, max: 600_000)
        case "tlsCiphers": tlsCiphers = try string()
        case "tlsMinVersion":
            let version = try string()
            guard version == "1.2" || version == "1.3" else {
                throw ConfigurationError("\(source): tlsMinVersion must be 1.2 or 1.3, not \(version)")
            }
            tlsMinVersion = version
        case "metricsPort": metricsPort = try int(min: 0, max: 65_535)
        case "metricsBind":
            let address = try string()
            guard !address.isEmpty else { throw ConfigurationError("\(source): metricsBind must be an address, not empty") }
            metricsBind = address
        default:
            throw ConfigurationError("\(source): unknown setting '\(key)' (known: \(Self.keys.joined(separator: ", ")))")
        }
    }

    /// The current value of every key, as JSON.
    public var asJSON: JSONObject {
        JSONObject([
            ("port", .number(Double(port))), ("bind", .string(bind)), ("workers", .number(Double(workers))),
            ("welcomeMessage", .string(welcomeMessage)), ("defaultRoom", .string(defaultRoom)),
            ("announceJoinLeave", .bool(announceJoinLeave)), ("maxLineBytes", .number(Double(maxLineBytes))),
            ("simultaneousActions", .number(Double(simultaneousActions))),
            ("maxStickyParams", .number(Double(maxStickyParams))),
            ("maxStickyParamBytes", .number(Double(maxStickyParamBytes))),
            ("maxStickyParamValueBytes", .number(Double(maxStickyParamValueBytes))),
            ("maxRoomsPerConnection", .number(Double(maxRoomsPerConnection))),
            ("maxRoomNameBytes", .number(Double(maxRoomNameBytes))),
            ("maxSayBytes", .number(Double(maxSayBytes))),
            ("maxOutputBytes", .number(Double(maxOutputBytes))),
            ("lineTimeout", .number(Double(lineTimeout))), ("idleTimeout", .number(Double(idleTimeout))),
            ("outputStallTimeout", .number(Double(outputStallTimeout))),
            ("halfClosedWaitLimit", .number(Double(halfClosedWaitLimit))),
            ("maxConnections", .number(Double(maxConnections))),
            ("pendingShutdownWaitLimit", .number(Double(pendingShutdownWaitLimit))),
            ("keepAliveInterval", .number(Double(keepAliveInterval))), ("publicDir", .string(publicDir)),
            ("logLevel", .string(logLevel)), ("logFile", .string(logFile)), ("logFormat", .string(logFormat)),
            ("connectionLogRate", .number(Double(connectionLogRate))),
            ("redisUrl", .string(redisUrl)), ("redisHost", .string(redisHost)), ("redisPort", .number(Double(redisPort))),
            ("redisSocket", .string(redisSocket)), ("redisPassword", .string(redisPassword)),
            ("redisPasswordFile", .string(redisPasswordFile)),
            ("redisDatabase", .number(Double(redisDatabase))), ("redisPrefix", .string(redisPrefix)),
            ("secure", .bool(secure)), ("certFile", .string(certFile)), ("keyFile", .string(keyFile)),
            ("caFile", .string(caFile)), ("tlsPort", .number(Double(tlsPort))), ("tlsBind", .string(tlsBind)),
            ("tlsHandshakeTimeout", .number(Double(tlsHandshakeTimeout))), ("tlsCiphers", .string(tlsCiphers)),
            ("tlsMinVersion", .string(tlsMinVersion)),
            ("metricsPort", .number(Double(metricsPort))), ("metricsBind", .string(metricsBind)),
        ])
    }

    /// The largest value of a numeric setting that names no maximum of its own.
    public static let defaultMaximum = 1_073_741_824

    /// Checks what no single setting can: settings that exclude each other.
    public func validate() throws(ConfigurationError) {
        if !redisPassword.isEmpty && !redisPasswordFile.isEmpty {
            throw ConfigurationError("redisPassword and redisPasswordFile are both set; set only one (redisPasswordFile keeps the password off command lines)")
        }
    }

    /// A value for an error message (long ones shortened).
    static func describe(_ value: JSON) -> String {
        var bytes: [UInt8] = []
        JSONWriter.write(value, to: &bytes)
        if bytes.count > 200 { return String(decoding: bytes.prefix(200), as: UTF8.self) + "… (\(bytes.count) bytes)" }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// `maxLineBytes` → `HERALD_MAX_LINE_BYTES`.
    public static func environmentName(for key: String) -> String {
        var name = "HERALD_"
        for character in key {
            if character.isUppercase { name.append("_") }
            name.append(contentsOf: character.uppercased())
        }
        return name
    }
}

enum LogLevelName {
    static func isValid(_ name: String) -> Bool {
        ["debug", "info", "warn", "warning", "error"].contains(name.lowercased())
    }
}

/// A configuration problem, said so that the operator can fix it.
public struct ConfigurationError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
