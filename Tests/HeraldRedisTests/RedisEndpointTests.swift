import HeraldCore
import Testing
@testable import HeraldRedis

@Suite struct RedisEndpointTests {
    @Test func hostPortAndDatabase() throws {
        let endpoint = try RedisEndpoint.parse(url: "redis://10.0.0.5:6380/3")
        #expect(endpoint.address == .tcp(host: "10.0.0.5", port: 6380))
        #expect(endpoint.database == 3)
        #expect(endpoint.password == nil)
        #expect(endpoint.prefix == "herald:")
    }

    @Test func defaultsPortAndDatabase() throws {
        let endpoint = try RedisEndpoint.parse(url: "redis://localhost")
        #expect(endpoint.address == .tcp(host: "localhost", port: 6379))
        #expect(endpoint.database == 0)
        #expect(try RedisEndpoint.parse(url: "redis://localhost/").database == 0)
    }

    @Test func password() throws {
        #expect(try RedisEndpoint.parse(url: "redis://:s3cret@127.0.0.1:7000").password == "s3cret")
        #expect(try RedisEndpoint.parse(url: "redis://user:pa%40ss@127.0.0.1:7000").password == "pa@ss")
        #expect(try RedisEndpoint.parse(url: "redis://:a@b@host:1/2").password == "a@b")
        #expect(try RedisEndpoint.parse(url: "redis://:a@b@host:1/2").address == .tcp(host: "host", port: 1))
    }

    @Test func ipv6() throws {
        #expect(try RedisEndpoint.parse(url: "redis://[::1]:6390/1").address == .tcp(host: "::1", port: 6390))
        #expect(try RedisEndpoint.parse(url: "redis://[::1]").address == .tcp(host: "::1", port: 6379))
    }

    @Test func unixSocket() throws {
        let endpoint = try RedisEndpoint.parse(url: "unix:///run/herald/redis.sock?db=2")
        #expect(endpoint.address == .unix(path: "/run/herald/redis.sock"))
        #expect(endpoint.database == 2)
        let plain = try RedisEndpoint.parse(url: "unix:///tmp/r.sock")
        #expect(plain.database == 0)
        #expect(try RedisEndpoint.parse(url: "unix:///tmp/r.sock?db=1&password=x").password == "x")
    }

    @Test(arguments: ["http://host", "redis://", "redis://host:0", "redis://host:99999", "redis://host:port",
                      "redis://host/x", "redis://host/-1", "unix://relative.sock", "unix:///", "unix:///s?db=x",
                      "unix:///s?color=red", "redis://[::1"])
    func rejects(url: String) {
        #expect(throws: ConfigurationError.self) { try RedisEndpoint.parse(url: url) }
    }

    @Test func fromConfiguration() throws {
        var configuration = Configuration()
        #expect(try RedisEndpoint.from(configuration) == nil)
        #expect(!configuration.hasRedis)
        configuration.redisHost = "127.0.0.1"
        configuration.redisPort = 6400
        configuration.redisDatabase = 4
        configuration.redisPassword = "pw"
        configuration.redisPrefix = "blue:"
        #expect(try RedisEndpoint.from(configuration)
                == RedisEndpoint(address: .tcp(host: "127.0.0.1", port: 6400), password: "pw", database: 4, prefix: "blue:"))
        configuration.redisSocket = "/tmp/x.sock"
        #expect(try RedisEndpoint.from(configuration)?.address == .unix(path: "/tmp/x.sock"))
        configuration.redisUrl = "redis://h:1/5"
        let fromURL = try #require(try RedisEndpoint.from(configuration))
        #expect(fromURL.address == .tcp(host: "h", port: 1))
        #expect(fromURL.database == 5)
        #expect(fromURL.password == "pw")  // the separate password applies to a URL without one
        #expect(fromURL.prefix == "blue:")
    }

    @Test func configurationKeys() throws {
        var configuration = Configuration()
        try configuration.set("redisUrl", .string("redis://x:1"), source: "test")
        try configuration.set("redisPort", .string("7001"), source: "test")
        try configuration.set("redisPrefix", .string("p:"), source: "test")
        #expect(configuration.redisUrl == "redis://x:1")
        #expect(configuration.redisPort == 7001)
        #expect(configuration.redisPrefix == "p:")
        #expect(Configuration.environmentName(for: "redisUrl") == "HERALD_REDIS_URL")
        for key in ["redisUrl", "redisHost", "redisPort", "redisSocket", "redisPassword", "redisDatabase", "redisPrefix"] {
            #expect(Configuration.keys.contains(key), "\(key) is a setting")
        }
    }

    @Test func descriptionHidesThePassword() throws {
        let endpoint = try RedisEndpoint.parse(url: "redis://:hunter2@host:1/2")
        #expect(!endpoint.description.contains("hunter2"))
    }
}
