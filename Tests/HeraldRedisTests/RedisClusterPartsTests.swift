import HeraldCore
import Testing
@testable import HeraldRedis

/// The pure parts of the Redis Cluster support: slots, the slot map, redirects, the URI.
@Suite struct RedisClusterPartsTests {
    /// `redis-cli -p <a cluster-enabled redis-server 7.0.15> CLUSTER KEYSLOT <key>`; the
    /// integration suite RedisClusterTests checks a thousand more keys against a live node.
    static let keyslots: [(String, Int)] = [
        ("", 0), ("a", 15495), ("foo", 12182), ("bar", 5061), ("hello", 866),
        ("{user1000}.following", 3443), ("{user1000}.followers", 3443), ("foo{}{bar}", 8363),
        ("foo{{bar}}zap", 4015), ("foo{bar}{zap}", 5061), ("{}foo", 9500), ("herald:room:lobby", 3882),
        ("{herald:}rooms", 13360), ("{herald:}w:web1-1", 13360), ("herald:room:{x}", 16287),
        ("héllo", 11061), ("123456789", 12739),
    ]

    @Test func slotsMatchRedis() {
        for (key, slot) in Self.keyslots { #expect(RedisSlots.slot(of: key) == slot, "\(key)") }
        #expect(RedisSlots.crc16(Array("123456789".utf8)) == 0x31C3)  // the XMODEM check value
    }

    @Test func busKeysShareOneSlotAndCacheBucketsSpread() {
        let endpoint = RedisEndpoint(address: .cluster(seeds: [RedisNode(host: "h", port: 1)]))
        let prefix = endpoint.busKeyPrefix
        #expect(prefix == "{herald:}")
        let slots = Set(["alive", "workers", "rooms", "w:x", "w:x:rooms", "r:lobby", "r:other"].map { RedisSlots.slot(of: prefix + $0) })
        #expect(slots.count == 1)
        let buckets = RedisCacheBuckets(prefix: "herald:")
        let keys = buckets.keys("some key")
        #expect(RedisSlots.slot(of: keys[0]) == RedisSlots.slot(of: keys[1]))
        #expect(Set(buckets.indexKeys.map { RedisSlots.slot(of: $0) }).count == RedisCacheBuckets.count)
        #expect(RedisEndpoint(address: .tcp(host: "h", port: 1)).busKeyPrefix == "herald:")
    }

    @Test func clusterURI() throws {
        let one = try RedisEndpoint.parse(url: "redis-cluster://10.0.0.1:7000")
        #expect(one.address == .cluster(seeds: [RedisNode(host: "10.0.0.1", port: 7000)]))
        #expect(one.password == nil)
        let many = try RedisEndpoint.parse(url: "redis-cluster://:s%40cret@a:7000,b,[::1]:7002/")
        #expect(many.address == .cluster(seeds: [RedisNode(host: "a", port: 7000), RedisNode(host: "b", port: 6379),
                                                 RedisNode(host: "::1", port: 7002)]))
        #expect(many.password == "s@cret")
        #expect(many.description == "redis-cluster://:***@a:7000,b:6379,[::1]:7002")
        for bad in ["redis-cluster://", "redis-cluster://a:7000,", "redis-cluster://:pw@a:0", "redis-cluster://a:7000/3",
                    "redis-cluster://a:x", "redis-cluster://[::1", "redis-cluster://:topsecret@a:7000,,b:1"] {
            #expect(throws: ConfigurationError.self, "\(bad)") { try RedisEndpoint.parse(url: bad) }
            do { _ = try RedisEndpoint.parse(url: bad) } catch {
                #expect(!error.description.contains("topsecret"))
                #expect(error.description.contains("redis-cluster://"))
            }
        }
    }

    static func node(_ port: Int, _ role: String, health: String = "online") -> RedisReply {
        .array([.string(Array("id".utf8)), .string(Array("abc\(port)".utf8)), .string(Array("port".utf8)), .integer(port),
                .string(Array("ip".utf8)), .string(Array("127.0.0.1".utf8)), .string(Array("endpoint".utf8)),
                .string(Array("127.0.0.1".utf8)), .string(Array("role".utf8)), .string(Array(role.utf8)),
                .string(Array("health".utf8)), .string(Array(health.utf8))])
    }

    static func shard(_ slots: [Int], _ nodes: [RedisReply]) -> RedisReply {
        .array([.string(Array("slots".utf8)), .array(slots.map { .integer($0) }), .string(Array("nodes".utf8)), .array(nodes)])
    }

    @Test func slotMapFromShards() throws {
        let reply = RedisReply.array([
            Self.shard([0, 5460], [Self.node(7000, "master"), Self.node(7003, "replica")]),
            Self.shard([5461, 10922], [Self.node(7001, "master"), Self.node(7004, "replica")]),
            // A failover: the old master failed, its replica took over.
            Self.shard([10923, 12000, 12001, 16383], [Self.node(7002, "master", health: "failed"), Self.node(7005, "master")]),
        ])
        let map = try #require(RedisSlotMap.fromShards(reply))
        #expect(map.coveredSlots == RedisSlots.count)
        #expect(map.master(forSlot: 0) == RedisNode(host: "127.0.0.1", port: 7000))
        #expect(map.master(forSlot: 5461) == RedisNode(host: "127.0.0.1", port: 7001))
        #expect(map.master(forSlot: 16383) == RedisNode(host: "127.0.0.1", port: 7005))
        #expect(map.masters.count == 3)
        #expect(map.knownNodes.count == 6)
        #expect(RedisSlotMap.fromShards(.array([.integer(1)])) == nil)
        #expect(RedisSlotMap.fromShards(.error("ERR This instance has cluster support disabled")) == nil)
    }

    @Test func slotMapFromSlotsAndRedirects() throws {
        func entry(_ start: Int, _ end: Int, _ ports: [Int]) -> RedisReply {
            .array([.integer(start), .integer(end)] + ports.map { .array([.string(Array("127.0.0.1".utf8)), .integer($0), .string([])]) })
        }
        var map = try #require(RedisSlotMap.fromSlots(.array([entry(0, 8191, [7000, 7003]), entry(8192, 16383, [7001, 7004])])))
        #expect(map.coveredSlots == RedisSlots.count)
        #expect(map.master(forSlot: 8191)?.port == 7000)
        #expect(map.master(forSlot: 8192)?.port == 7001)

        let moved = try #require(RedisRedirect.parse("MOVED 3999 127.0.0.1:7002"))
        #expect(moved == RedisRedirect(kind: .moved, slot: 3999, node: RedisNode(host: "127.0.0.1", port: 7002)))
        #expect(RedisRedirect.parse("ASK 1 [::1]:7000") == RedisRedirect(kind: .ask, slot: 1, node: RedisNode(host: "::1", port: 7000)))
        for bad in ["MOVED", "MOVED x 1.2.3.4:1", "MOVED 16384 h:1", "ASK 1 h", "ERR something 1 h:1", "MOVED 1 :7000"] {
            #expect(RedisRedirect.parse(bad) == nil, "\(bad)")
        }
        map.assign(moved.slot...moved.slot, to: moved.node)
        #expect(map.master(forSlot: 3999)?.port == 7002)
        #expect(map.master(forSlot: 4000)?.port == 7000)
        #expect(map.masters.count == 3)
        // Every slot of 7000 moved away: compacting drops it.
        map.assign(0...8191, to: RedisNode(host: "127.0.0.1", port: 7002))
        map.compact()
        #expect(map.masters.map(\.port).sorted() == [7001, 7002])
        #expect(map.master(forSlot: 16383)?.port == 7001)
    }

    @Test func routing() {
        func args(_ words: String...) -> [[UInt8]] { words.map { Array($0.utf8) } }
        #expect(RedisClusterClient.route(args("GET", "k")) == .key(1))
        #expect(RedisClusterClient.route(args("EVALSHA", "abc", "2", "k1", "k2", "a")) == .key(3))
        #expect(RedisClusterClient.route(args("eval", "return 1", "0")) == .anyMaster)
        #expect(RedisClusterClient.route(args("SCRIPT", "LOAD", "x")) == .everyMaster)
        #expect(RedisClusterClient.route(args("CLIENT", "LIST", "TYPE", "pubsub")) == .anyMaster)
        #expect(RedisClusterClient.route(args("SPUBLISH", "ch", "m")) == .key(1))
    }
}
