import HeraldCore

/// Where Redis is and how to log in: from a URL or from the separate settings.
public struct RedisEndpoint: Sendable, Equatable, CustomStringConvertible {
    public enum Address: Sendable, Equatable {
        case tcp(host: String, port: Int)
        case unix(path: String)
        /// The master that `master` names, as the sentinels say (see SentinelResolver).
        case sentinel(nodes: [RedisNode], master: String)
        /// Redis Cluster: the seed nodes the slot map is first asked of.
        case cluster(seeds: [RedisNode])
    }

    public var address: Address
    public var password: String?
    public var database: Int
    /// Prefix of every key and channel, so that clusters can share one Redis.
    public var prefix: String

    public init(address: Address, password: String? = nil, database: Int = 0, prefix: String = "herald:") {
        self.address = address
        self.password = password
        self.database = database
        self.prefix = prefix
    }

    /// `redis://[[user]:password@]host[:port][/db]` or `unix:///path/to.sock[?db=N][&password=P]`.
    public static func parse(url: String, prefix: String = "herald:") throws(ConfigurationError) -> RedisEndpoint {
        func fail(_ why: String) -> ConfigurationError {
            // The URL as given, less its password: an error may end up in a log.
            ConfigurationError("redisUrl '\(Secrets.redact(url, wholeText: true))': \(why) (expected redis://host:port[/db] or unix:///path/to.sock[?db=N]; the password belongs in redisPasswordFile)")
        }
        if url.hasPrefix("unix://") {
            var rest = Substring(url.dropFirst("unix://".count))
            var query: Substring = ""
            if let mark = rest.firstIndex(of: "?") {
                query = rest[rest.index(after: mark)...]
                rest = rest[..<mark]
            }
            guard rest.hasPrefix("/"), rest.count > 1 else { throw fail("the socket path must be absolute") }
            var endpoint = RedisEndpoint(address: .unix(path: percentDecoded(rest)), prefix: prefix)
            for pair in query.split(separator: "&", omittingEmptySubsequences: true) {
                let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                let value = parts.count == 2 ? percentDecoded(parts[1]) : ""
                switch parts[0] {
                case "db":
                    guard let db = Int(value), db >= 0 else { throw fail("db must be a whole number") }
                    endpoint.database = db
                case "password": endpoint.password = value
                default: throw fail("unknown parameter '\(parts[0])'")
                }
            }
            return endpoint
        }
        if url.hasPrefix(sentinelScheme) { return try parseSentinel(url: url, prefix: prefix) }
        if url.hasPrefix("redis-cluster://") { return try parseCluster(url: url, prefix: prefix) }
        guard url.hasPrefix("redis://") else { throw fail("unknown scheme") }
        var rest = Substring(url.dropFirst("redis://".count))
        let password = takePassword(from: &rest)
        guard let database = takeDatabase(from: &rest) else { throw fail("the database must be a whole number") }
        var host = rest
        var port = 6379
        if rest.hasPrefix("[") {  // [::1]:6379
            guard let close = rest.firstIndex(of: "]") else { throw fail("unclosed [") }
            host = rest[rest.index(after: rest.startIndex)..<close]
            let after = rest[rest.index(after: close)...]
            if after.hasPrefix(":") {
                guard let value = Int(after.dropFirst()), (1...65_535).contains(value) else { throw fail("bad port") }
                port = value
            } else if !after.isEmpty { throw fail("junk after the host") }
        } else if let colon = rest.lastIndex(of: ":") {
            host = rest[..<colon]
            guard let value = Int(rest[rest.index(after: colon)...]), (1...65_535).contains(value) else { throw fail("bad port") }
            port = value
        }
        guard !host.isEmpty else { throw fail("no host") }
        return RedisEndpoint(address: .tcp(host: String(host), port: port), password: password, database: database, prefix: prefix)
    }

    /// The endpoint the configuration names, or nil when it names none. Reads
    /// `redisPasswordFile` (so each call sees the file as it is now: a start, a reload).
    public static func from(_ configuration: Configuration) throws(ConfigurationError) -> RedisEndpoint? {
        var endpoint: RedisEndpoint
        if !configuration.redisUrl.isEmpty {
            endpoint = try parse(url: configuration.redisUrl, prefix: configuration.redisPrefix)
        } else if !configuration.redisSocket.isEmpty {
            endpoint = RedisEndpoint(address: .unix(path: configuration.redisSocket), database: configuration.redisDatabase,
                                     prefix: configuration.redisPrefix)
        } else if !configuration.redisHost.isEmpty {
            endpoint = RedisEndpoint(address: .tcp(host: configuration.redisHost, port: configuration.redisPort),
                                     database: configuration.redisDatabase, prefix: configuration.redisPrefix)
        } else {
            return nil
        }
        if !configuration.redisPassword.isEmpty { endpoint.password = configuration.redisPassword }
        if !configuration.redisPasswordFile.isEmpty {
            endpoint.password = try Secrets.readPasswordFile(configuration.redisPasswordFile)
        }
        return endpoint
    }

    /// For logs: the address without the password.
    public var description: String {
        let login = password == nil ? "" : ":***@"
        switch address {
        case .tcp(let host, let port):
            let shown = host.contains(":") ? "[\(host)]" : host
            return "redis://\(login)\(shown):\(port)/\(database)"
        case .unix(let path): return "unix://\(path)?db=\(database)" + (password == nil ? "" : "&password=***")
        case .sentinel(let nodes, let master):
            return "\(Self.sentinelScheme)\(login)\(nodes.map(\.description).joined(separator: ","))/\(database)#\(master)"
        case .cluster(let seeds): return "redis-cluster://\(login)" + seeds.map(\.description).joined(separator: ",")
        }
    }

    /// Takes `[[user]:password@]` off the front of `rest`: the password, percent-decoded
    /// (a user name alone counts as the password, as redis-cli reads it).
    static func takePassword(from rest: inout Substring) -> String? {
        guard let at = rest.lastIndex(of: "@") else { return nil }
        let userInfo = rest[..<at]
        rest = rest[rest.index(after: at)...]
        if let colon = userInfo.firstIndex(of: ":") { return percentDecoded(userInfo[userInfo.index(after: colon)...]) }
        return userInfo.isEmpty ? nil : percentDecoded(userInfo)
    }

    /// Takes `/db` off the end of `rest`: the database (0 when absent), or nil when it is not
    /// a whole number.
    static func takeDatabase(from rest: inout Substring) -> Int? {
        guard let slash = rest.firstIndex(of: "/") else { return 0 }
        let path = rest[rest.index(after: slash)...]
        rest = rest[..<slash]
        if path.isEmpty { return 0 }
        guard let db = Int(path), db >= 0 else { return nil }
        return db
    }

    static func percentDecoded(_ text: Substring) -> String {
        guard text.contains("%") else { return String(text) }
        var bytes: [UInt8] = []
        var iterator = Array(text.utf8)[...]
        while let byte = iterator.popFirst() {
            if byte == UInt8(ascii: "%"), iterator.count >= 2,
               let value = UInt8(String(decoding: iterator.prefix(2), as: UTF8.self), radix: 16) {
                bytes.append(value)
                iterator = iterator.dropFirst(2)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// One Redis node by host and port (a sentinel, the master it names, a cluster node).
public struct RedisNode: Sendable, Equatable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// `host:port`, `[v6]:port`.
    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}
