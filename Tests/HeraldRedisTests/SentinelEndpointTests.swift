import HeraldCore
import Testing
@testable import HeraldRedis

@Suite struct SentinelEndpointTests {
    @Test func sentinelsMasterAndDatabase() throws {
        let endpoint = try RedisEndpoint.parse(url: "redis-sentinel://10.0.0.1:26379,10.0.0.2:26380,[::1]:5000/2#mymaster")
        #expect(endpoint.address == .sentinel(nodes: [RedisNode(host: "10.0.0.1", port: 26379), RedisNode(host: "10.0.0.2", port: 26380),
                                                      RedisNode(host: "::1", port: 5000)], master: "mymaster"))
        #expect(endpoint.database == 2)
        #expect(endpoint.password == nil)
    }

    @Test func defaultPortPasswordAndDescription() throws {
        let endpoint = try RedisEndpoint.parse(url: "redis-sentinel://:s%40cret@sentinel-a,sentinel-b#cache")
        #expect(endpoint.address == .sentinel(nodes: [RedisNode(host: "sentinel-a", port: 26379), RedisNode(host: "sentinel-b", port: 26379)],
                                              master: "cache"))
        #expect(endpoint.password == "s@cret")
        #expect(endpoint.database == 0)
        #expect(endpoint.description == "redis-sentinel://:***@sentinel-a:26379,sentinel-b:26379/0#cache")
        #expect(!endpoint.description.contains("cret"))
    }

    @Test func malformed() {
        let cases: [(String, String)] = [
            ("redis-sentinel://:pw@h:1", "no master name"),
            ("redis-sentinel://:pw@h:1#", "no master name"),
            ("redis-sentinel://:pw@h:1/x#m", "database"),
            ("redis-sentinel://:pw@h:0#m", "bad sentinel address"),
            ("redis-sentinel://:pw@h:1,,h:2#m", "empty sentinel address"),
            ("redis-sentinel://:pw@#m", "empty sentinel address"),
            ("redis-sentinel://:pw@[::1#m", "bad sentinel address"),
        ]
        for (url, complaint) in cases {
            do {
                _ = try RedisEndpoint.parse(url: url)
                Issue.record("\(url) parsed")
            } catch {
                #expect(error.description.contains(complaint), "\(url): \(error)")
                #expect(!error.description.contains("pw"), "\(error)")
            }
        }
    }

    @Test func plainFormsUnchanged() throws {
        #expect(try RedisEndpoint.parse(url: "redis://127.0.0.1:6380/1").address == .tcp(host: "127.0.0.1", port: 6380))
        #expect(try RedisEndpoint.parse(url: "unix:///tmp/r.sock").address == .unix(path: "/tmp/r.sock"))
    }

    @Test func roleReply() {
        #expect(RedisClient.isMaster(role: .array([.string(Array("master".utf8)), .integer(0), .array([])])))
        #expect(!RedisClient.isMaster(role: .array([.string(Array("slave".utf8)), .string(Array("h".utf8))])))
        #expect(!RedisClient.isMaster(role: .error("ERR unknown command")))
    }
}
