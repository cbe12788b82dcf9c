/// The cache's keys on a Redis Cluster. Each entry and its line in the expiry index must
/// share a slot (one script writes both), so entries go into `count` buckets by the slot
/// of their cache key, each bucket a hash tag of its own: `{<prefix>cache:<n>}c:<key>`
/// and its index `{<prefix>cache:<n>}`. The tags spread over the shards; `size` sums
/// the buckets' indexes.
struct RedisCacheBuckets: Sendable {
    static let count = 16
    let tags: [[UInt8]]

    init(prefix: String) {
        tags = (0..<Self.count).map { Array("{\(prefix)cache:\($0)}".utf8) }
    }

    var indexKeys: [[UInt8]] { tags }

    func keys(_ key: String) -> [[UInt8]] {
        let bytes = Array(key.utf8)
        let tag = tags[RedisSlots.slot(of: bytes) % Self.count]
        return [tag + Array("c:".utf8) + bytes, tag]
    }
}
