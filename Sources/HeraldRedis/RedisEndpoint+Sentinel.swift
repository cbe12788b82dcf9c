import HeraldCore

extension RedisEndpoint {
    static let sentinelScheme = "redis-sentinel://"
    static let sentinelDefaultPort = 26_379

    /// `redis-sentinel://[:password@]host[:port][,host[:port]…][/db]#mastername` (Lettuce's
    /// form). The password is the master's; sentinels are asked without one unless they
    /// answer NOAUTH, and then with the same password.
    static func parseSentinel(url: String, prefix: String) throws(ConfigurationError) -> RedisEndpoint {
        func fail(_ why: String) -> ConfigurationError {
            ConfigurationError("redisUrl '\(Secrets.redact(url, wholeText: true))': \(why) (expected redis-sentinel://host:port[,host:port…][/db]#mastername)")
        }
        var rest = Substring(url.dropFirst(sentinelScheme.count))
        guard let hash = rest.lastIndex(of: "#") else { throw fail("no master name (add #mastername)") }
        let master = percentDecoded(rest[rest.index(after: hash)...])
        rest = rest[..<hash]
        guard !master.isEmpty else { throw fail("no master name (add #mastername)") }
        guard !master.contains(where: { $0 == " " || $0 == "\r" || $0 == "\n" }) else { throw fail("the master name has a space") }
        var password = takePassword(from: &rest)
        if password?.isEmpty == true { password = nil }
        guard let database = takeDatabase(from: &rest) else { throw fail("the database must be a whole number") }
        var nodes: [RedisNode] = []
        for item in rest.split(separator: ",", omittingEmptySubsequences: false) {
            guard let node = parseNode(item, defaultPort: sentinelDefaultPort) else {
                throw fail(item.isEmpty ? "an empty sentinel address" : "bad sentinel address '\(item)'")
            }
            nodes.append(node)
        }
        guard !nodes.isEmpty else { throw fail("no sentinel") }
        return RedisEndpoint(address: .sentinel(nodes: nodes, master: master), password: password, database: database,
                             prefix: prefix)
    }

    /// `host`, `host:port`, `[v6]`, `[v6]:port`; nil when malformed.
    static func parseNode(_ text: Substring, defaultPort: Int) -> RedisNode? {
        var host = text
        var port = defaultPort
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return nil }
            host = text[text.index(after: text.startIndex)..<close]
            let after = text[text.index(after: close)...]
            if after.hasPrefix(":") {
                guard let value = Int(after.dropFirst()), (1...65_535).contains(value) else { return nil }
                port = value
            } else if !after.isEmpty { return nil }
        } else if let colon = text.lastIndex(of: ":") {
            host = text[..<colon]
            guard let value = Int(text[text.index(after: colon)...]), (1...65_535).contains(value) else { return nil }
            port = value
        }
        guard !host.isEmpty, !host.contains(where: { $0 == "/" || $0 == "@" || $0 == " " }) else { return nil }
        return RedisNode(host: String(host), port: port)
    }
}
