import HeraldCore

extension RedisEndpoint {
    /// A Redis Cluster endpoint (`redis-cluster://…`).
    public var isCluster: Bool {
        if case .cluster = address { return true }
        return false
    }

    /// The prefix of the bus's keys (membership, workers): on a cluster they all carry
    /// the hash tag `{<prefix>}`, so that each script's keys share one slot. Channels and
    /// cache keys do not (they spread over the shards).
    public var busKeyPrefix: String { isCluster ? "{\(prefix)}" : prefix }

    /// The same endpoint, on one node of the cluster (for that node's connection).
    func node(_ node: RedisNode) -> RedisEndpoint {
        RedisEndpoint(address: .tcp(host: node.host, port: node.port), password: password, database: 0, prefix: prefix)
    }

    /// `redis-cluster://[[user]:password@]host:port[,host:port…]` (no database: a cluster
    /// has only database 0).
    static func parseCluster(url: String, prefix: String) throws(ConfigurationError) -> RedisEndpoint {
        func fail(_ why: String) -> ConfigurationError {
            ConfigurationError("redisUrl '\(Secrets.redact(url, wholeText: true))': \(why) (expected redis-cluster://[:password@]host:port[,host:port…]; the password belongs in redisPasswordFile)")
        }
        var rest = Substring(url.dropFirst("redis-cluster://".count))
        let password = takePassword(from: &rest)
        if let slash = rest.firstIndex(of: "/") {
            let path = rest[rest.index(after: slash)...]
            guard path.isEmpty || path == "0" else { throw fail("a cluster has only database 0") }
            rest = rest[..<slash]
        }
        var seeds: [RedisNode] = []
        for item in rest.split(separator: ",", omittingEmptySubsequences: false) {
            guard let node = parseNode(item, defaultPort: 6379) else {
                throw fail(item.isEmpty ? "an empty seed in the list" : "bad seed address '\(item)' (a bad port or host)")
            }
            seeds.append(node)
        }
        guard !seeds.isEmpty else { throw fail("no seed node") }
        return RedisEndpoint(address: .cluster(seeds: seeds), password: password, database: 0, prefix: prefix)
    }
}
