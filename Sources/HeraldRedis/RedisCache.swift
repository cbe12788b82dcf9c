import HeraldCore
import HeraldLoop
import HeraldProtocol

/// The shared cache in Redis. Each entry is one string key, `<prefix>c:<key>`, holding
/// `<createdAt> <expireTimestamp or ->\n<JSON value>` and expiring in Redis (PX); a
/// sorted set `<prefix>cache` indexes keys by expiry time so that `size` needs no KEYS:
/// a script trims what has expired and counts the rest, atomically.
/// `readAt` is the time of the load; it is not written back.
@LoopActor
public final class RedisCache: Cache {
    let client: any RedisCommandConnection
    private let entryPrefix: [UInt8]
    private let indexKey: [UInt8]
    /// On a cluster: the entries and their index spread over `RedisCacheBuckets` hash tags.
    private let buckets: RedisCacheBuckets?
    private let saveScript = RedisScript(Lua.cacheSave)
    private let destroyScript = RedisScript(Lua.cacheDestroy)
    private let sizeScript = RedisScript(Lua.cacheSize)

    public init(endpoint: RedisEndpoint, commandTimeout: Int = 2_000) {
        client = RedisConnections.commands(endpoint, name: "cache", commandTimeout: commandTimeout)
        entryPrefix = Array((endpoint.prefix + "c:").utf8)
        indexKey = Array((endpoint.prefix + "cache").utf8)
        buckets = endpoint.isCluster ? RedisCacheBuckets(prefix: endpoint.prefix) : nil
    }

    public func start() {
        client.onReady = { [unowned self] in
            for script in [saveScript, destroyScript, sizeScript] { script.load(on: client) }
        }
        client.start()
    }

    public func stop() { client.stop() }

    public func save(_ key: String, _ value: JSON, expireInMilliseconds: Int?) async throws -> Bool {
        try ready()
        let now = Clock.wallMillis()
        let stored = Self.encode(CacheEntry(value: value, expireTimestamp: expireInMilliseconds.map { now + $0 },
                                            createdAt: now, readAt: nil))
        let reply = try await saveScript.run(on: client, keys: keys(key),
                                             arguments: [stored, expireInMilliseconds.map { Array(String(max(1, $0)).utf8) } ?? [],
                                                         Array(key.utf8)])
        return reply.integer == 1
    }

    public func load(_ key: String) async throws -> CacheEntry? {
        try ready()
        let reply = try await client.command([Array("GET".utf8), keys(key)[0]])
        guard case .string(let bytes) = reply else { return nil }
        let now = Clock.wallMillis()
        guard var entry = Self.decode(bytes) else { throw RedisError.protocolError("cache entry \(key) is not readable") }
        if let expiry = entry.expireTimestamp, expiry <= now { return nil }
        entry.readAt = now
        return entry
    }

    public func destroy(_ key: String) async throws -> Bool {
        try ready()
        let reply = try await destroyScript.run(on: client, keys: keys(key),
                                                arguments: [Array(key.utf8)])
        return (reply.integer ?? 0) > 0
    }

    public func size() async throws -> Int {
        try ready()
        if let buckets {
            var total = 0
            for index in buckets.indexKeys {
                let reply = try await sizeScript.run(on: client, keys: [index], arguments: [])
                guard let count = reply.integer else { throw RedisError.protocolError("cache size: unexpected reply") }
                total += count
            }
            return total
        }
        let reply = try await sizeScript.run(on: client, keys: [indexKey], arguments: [])
        guard let count = reply.integer else { throw RedisError.protocolError("cache size: unexpected reply") }
        return count
    }

    /// The entry's key and its index's key.
    private func keys(_ key: String) -> [[UInt8]] {
        if let buckets { return buckets.keys(key) }
        return [entryPrefix + Array(key.utf8), indexKey]
    }

    private func ready() throws {
        guard client.acceptsCommands else { throw RedisError.unavailable(client.lastError) }
    }

    /// `<createdAt> <expireTimestamp or ->\n<JSON>`
    nonisolated static func encode(_ entry: CacheEntry) -> [UInt8] {
        var out = Array("\(entry.createdAt) \(entry.expireTimestamp.map(String.init) ?? "-")\n".utf8)
        JSONWriter.write(entry.value, to: &out)
        return out
    }

    nonisolated static func decode(_ bytes: [UInt8]) -> CacheEntry? {
        guard let newline = bytes.firstIndex(of: UInt8(ascii: "\n")) else { return nil }
        let header = String(decoding: bytes[..<newline], as: UTF8.self).split(separator: " ")
        guard header.count == 2, let createdAt = Int(header[0]) else { return nil }
        let expiry = header[1] == "-" ? nil : Int(header[1])
        if header[1] != "-" && expiry == nil { return nil }
        guard let value = try? JSONParser.parse(Array(bytes[(newline + 1)...])) else { return nil }
        return CacheEntry(value: value, expireTimestamp: expiry, createdAt: createdAt, readAt: nil)
    }
}
