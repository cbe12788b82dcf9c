import Foundation
import Glibc
import Testing
@testable import HeraldTestSupport

/// Issue 11 (Sentinel half): a master, a replica and three sentinels; two herald hosts on
/// the `redis-sentinel://` URI; the master killed under load.
@Suite("Redis Sentinel: failover under load, say while Redis is gone, configuration", .serialized)
struct SentinelTests {
    static func options(_ url: String, _ settings: [(String, String)] = []) -> HeraldOptions {
        var options = HeraldOptions([("defaultRoom", "")] + settings)
        options.extraArguments = ["--redis", url]
        return options
    }

    static func serverID(_ client: LineClient) throws -> String {
        try client.send("status")
        return try client.readJSON()["id"]?.stringValue ?? ""
    }

    /// Reads lines until one holds `needle` (true) or `seconds` pass (false).
    static func hears(_ client: LineClient, _ needle: String, within seconds: Double) -> Bool {
        let deadline = Deadline(seconds)
        while !deadline.passed {
            guard let line = try? client.readLine(timeout: max(0.01, deadline.end - Deadline.now())) else { return false }
            if line.contains(needle) { return true }
        }
        return false
    }

    @Test("master SIGKILLed under load: say, roomView and cacheTest work across hosts within 2 s of the promotion; every request answered; no worker restarted")
    func failoverUnderLoad() throws {
        let setup = try RedisSentinelSetup()
        defer { setup.stopAll() }
        try withHerald(Self.options(setup.url)) { a in
            try withHerald(Self.options(setup.url)) { b in
                let (alice, aliceID) = try a.connectWithId()
                let (bob, bobID) = try b.connectWithId()
                let (dave, _) = try b.connectWithId()
                try alice.roundTrip("roomAdd r", #"{"status":"OK","context":"response","data":true,"messageCount":2}"#)
                try bob.roundTrip("roomAdd r", #"{"status":"OK","context":"response","data":true,"messageCount":2}"#)
                let idsBefore = (try Self.serverID(alice), try Self.serverID(bob))
                try alice.send("say r before")
                _ = try alice.readJSON()
                #expect(Self.hears(bob, "\"before\"", within: 2))

                setup.killMaster()
                let killedAt = Deadline.now()
                var promotedAt: Double?
                var sayBackAt: Double?, viewBackAt: Double?, cacheBackAt: Double?
                var replies = 0, errors = 0
                var daveInZ = false
                var i = 0
                let deadline = Deadline(25)
                while !deadline.passed && (sayBackAt == nil || viewBackAt == nil || cacheBackAt == nil || promotedAt == nil) {
                    i += 1
                    if promotedAt == nil, setup.masterPortAsSaid() == setup.replicaPort { promotedAt = Deadline.now() }
                    // Each request must get a reply (error or success) within 5 s: none lost.
                    try alice.send("say r m\(i)")
                    let said = try alice.readJSON(timeout: 5)
                    replies += 1
                    if said["status"]?.stringValue == "OK" {
                        if sayBackAt == nil, Self.hears(bob, "\"m\(i)\"", within: 0.3), promotedAt != nil { sayBackAt = Deadline.now() }
                    } else {
                        errors += 1
                        #expect(said["status"]?.stringValue == "room bus unavailable: message not sent", "\(said)")
                    }
                    try alice.send(#"{"action":"cacheTest","params":{"key":"k\#(i)","value":"v"}}"#)
                    let cached = try alice.readJSON(timeout: 5)
                    replies += 1
                    if cached["cacheTestResults"] != nil {
                        if cacheBackAt == nil, promotedAt != nil { cacheBackAt = Deadline.now() }
                    } else {
                        errors += 1
                        #expect(cached["error"]?.stringValue?.contains("unavailable") == true
                                || cached["error"]?.stringValue?.contains("timed out") == true
                                || cached["error"]?.stringValue?.contains("lost") == true, "\(cached)")
                    }
                    try bob.send("roomView r")
                    var view = try bob.readJSON(timeout: 5)
                    while view["context"]?.stringValue == "user" { view = try bob.readJSON(timeout: 5) }  // (a late chat line)
                    replies += 1
                    if Set(view["data"]?["members"]?.keys ?? []) == [aliceID, bobID] {
                        if viewBackAt == nil, promotedAt != nil { viewBackAt = Deadline.now() }
                    } else {
                        errors += 1
                    }
                    try dave.send(daveInZ ? "roomLeave z" : "roomAdd z")
                    let moved = try dave.readJSON(timeout: 5)
                    replies += 1
                    if moved["data"]?.boolValue == true { daveInZ.toggle() } else { errors += 1 }
                    usleep(50_000)
                }
                let promoted = try #require(promotedAt, "the sentinels did not promote the replica within 25 s")
                let say = try #require(sayBackAt, "cross-host say did not come back")
                let view = try #require(viewBackAt, "roomView did not come back")
                let cache = try #require(cacheBackAt, "cacheTest did not come back")
                print("sentinel failover: promotion \(Int((promoted - killedAt) * 1000)) ms after the kill; after it: "
                      + "say \(Int((say - promoted) * 1000)) ms, roomView \(Int((view - promoted) * 1000)) ms, "
                      + "cacheTest \(Int((cache - promoted) * 1000)) ms; \(replies) replies, \(errors) errors")
                #expect(say - promoted <= 2)
                #expect(view - promoted <= 2)
                #expect(cache - promoted <= 2)
                // Bob's say reaches alice too, a new member is visible everywhere, no worker restarted.
                try bob.send("say r from bob after")
                #expect(try bob.readJSON()["status"]?.stringValue == "OK")
                #expect(Self.hears(alice, "\"from bob after\"", within: 2))
                let (carol, carolID) = try a.connectWithId()
                try carol.send("roomAdd r")
                #expect(try carol.readJSON()["data"]?.boolValue == true)
                try bob.send("roomView r")
                var last = try bob.readJSON()
                while last["context"]?.stringValue == "user" { last = try bob.readJSON() }
                #expect(Set(last["data"]?["members"]?.keys ?? []) == [aliceID, bobID, carolID])
                #expect((try Self.serverID(alice), try Self.serverID(bob)) == idsBefore)
                #expect(a.stderrText().contains("redis.master.switched"))
                if ProcessInfo.processInfo.environment["SENTINEL_TEST_LOG"] != nil { print(a.stderrText()) }
                // herald status: each worker's Redis node, and its role.
                let onNewMaster = "127.0.0.1:\(setup.replicaPort) master"
                try RedisBusTests.eventually(4, "herald status showing the new master") {
                    let workers = try ClusterTests.status(a)["workers"]?.arrayValue ?? []
                    return workers.first?["redisNode"]?.stringValue == onNewMaster
                }
                try RedisBusTests.eventually(4, "herald status (the table) showing the new master") {
                    try ClusterTests.cli(b, ["status"]).stdout.contains("redis \(onNewMaster)")
                }
                #expect(!a.stderrText().contains("worker.exited") && !b.stderrText().contains("worker.exited"))
            }
        }
    }

    @Test("a manual failover (SENTINEL FAILOVER: the old master lives on as a replica): every connection follows the new master")
    func manualFailover() throws {
        let setup = try RedisSentinelSetup()
        defer { setup.stopAll() }
        try withHerald(Self.options(setup.url)) { a in
            try withHerald(Self.options(setup.url)) { b in
                let (alice, aliceID) = try a.connectWithId()
                let (bob, bobID) = try b.connectWithId()
                try alice.roundTrip("roomAdd r", #"{"status":"OK","context":"response","data":true,"messageCount":2}"#)
                try bob.roundTrip("roomAdd r", #"{"status":"OK","context":"response","data":true,"messageCount":2}"#)
                let oldMaster = setup.masterPort
                #expect(try RedisSentinelSetup.query(port: setup.sentinelPorts[0], "SENTINEL FAILOVER \(RedisSentinelSetup.masterName)") == ["OK"])
                try RedisBusTests.eventually(10, "the replica promoted") { setup.masterPortAsSaid() == setup.replicaPort }
                // Writes (joins, cache) and chat in both directions work on the new master.
                let onNewMaster = "127.0.0.1:\(setup.replicaPort) master"
                for server in [a, b] {
                    try RedisBusTests.eventually(4, "every client of the worker on the new master") {
                        try ClusterTests.status(server)["workers"]?.arrayValue?.first?["redisNode"]?.stringValue == onNewMaster
                    }
                }
                let (carol, carolID) = try b.connectWithId()
                try carol.roundTrip("roomAdd r", #"{"status":"OK","context":"response","data":true,"messageCount":2}"#)
                try alice.send("roomView r")
                #expect(Set(try alice.readJSON()["data"]?["members"]?.keys ?? []) == [aliceID, bobID, carolID])
                try alice.send("say r to all")
                #expect(try alice.readJSON()["status"]?.stringValue == "OK")
                #expect(Self.hears(bob, #""message":"to all""#, within: 2))
                try bob.send("say r back")
                #expect(try bob.readJSON()["status"]?.stringValue == "OK")
                #expect(Self.hears(alice, #""message":"back""#, within: 2))
                try alice.roundTrip(#"{"action":"cacheTest","params":{"key":"k","value":"v"}}"#, #"{"cacheTestResults":<ANY>"#)
                // (The sentinels turn the old master, still running, into a replica some 10 s later.)
                #expect(setup.masterPort == oldMaster)
            }
        }
    }

    @Test("master, replica and sentinels with a password: herald logs in to both (sentinels after their NOAUTH), the password in no log")
    func withPassword() throws {
        let setup = try RedisSentinelSetup(password: "s3cret-pw")
        defer { setup.stopAll() }
        try withHerald(Self.options(setup.url)) { server in
            let (alice, _) = try server.connectWithId()
            try alice.roundTrip("roomAdd r", #"{"status":"OK","context":"response","data":true,"messageCount":2}"#)
            try alice.roundTrip(#"{"action":"cacheTest","params":{"key":"k","value":"v"}}"#, #"{"cacheTestResults":<ANY>"#)
            // The +switch-master watch works too (it logged in after the sentinel's NOAUTH).
            usleep(1_500_000)
            #expect(try RedisSentinelSetup.query(port: setup.sentinelPorts[0], "SENTINEL FAILOVER \(RedisSentinelSetup.masterName)",
                                                 password: setup.password) == ["OK"])
            let onNewMaster = "127.0.0.1:\(setup.replicaPort) master"
            try RedisBusTests.eventually(8, "the worker on the new master") {
                try ClusterTests.status(server)["workers"]?.arrayValue?.first?["redisNode"]?.stringValue == onNewMaster
            }
            let log = server.stderrText()
            #expect(log.contains("redis.master.switched"))
            #expect(log.contains("how=+switch-master"), "the watch did not hear the switch")
            #expect(log.contains("redis.master.found"))
            #expect(!log.contains("s3cret-pw"))
        }
    }

    @Test("requests made while the sentinels are still being asked for the master wait for it: joins, cache and say are answered OK")
    func requestsWhileTheMasterIsAskedFor() throws {
        let redis = try RedisServer()
        defer { redis.stop() }
        let sentinel = try FakeSentinel(naming: redis.port, answerDelay: 0.7)
        defer { sentinel.stop() }
        try withHerald(Self.options(sentinel.url)) { server in
            // The worker serves at once; its Redis connections wait for the sentinel's answer.
            try RedisAtStart.expectAnsweredOK(server)
        }
    }

    @Test("a node the sentinels name that is not a master (ROLE) is refused, and asked again until it is one")
    func namedNodeNotAMaster() throws {
        let redis = try RedisServer()
        defer { redis.stop() }
        #expect(try redis.command("REPLICAOF 127.0.0.1 1") == "+OK")  // a replica of nothing
        let sentinel = try FakeSentinel(naming: redis.port)
        defer { sentinel.stop() }
        try withHerald(Self.options(sentinel.url)) { server in
            let (client, _) = try server.connectWithId()
            usleep(500_000)
            try client.send("roomAdd r")
            let refused = try client.readJSON()
            #expect(refused["data"]?.boolValue == false, "\(refused)")
            #expect(server.stderrText().contains("is not a master (ROLE)"))
            #expect(try redis.command("REPLICAOF NO ONE") == "+OK")
            try RedisBusTests.eventually(5, "the join working once the node is a master") {
                try client.send("roomAdd r")
                return try client.readJSON()["data"]?.boolValue == true
            }
            // Every connection (bus, subscriber, cache) on it, each checked by ROLE.
            try RedisBusTests.eventually(5, "every connection on the master") {
                try ClusterTests.status(server)["workers"]?.arrayValue?.first?["redisNode"]?.stringValue
                    == "127.0.0.1:\(redis.port) master"
            }
        }
    }

    @Test("a subscription that hears nothing (open, but nothing crosses it) is reconnected: chat across hosts is back within 5 s")
    func silentSubscriber() throws {
        let redis = try RedisServer()
        defer { redis.stop() }
        let proxy = try BlackholeProxy(to: redis.port)
        defer { proxy.stop() }
        try withHerald(Self.options(proxy.url)) { a in
            try withHerald(Self.options(proxy.url)) { b in
                let (alice, _) = try a.connectWithId()
                let (bob, _) = try b.connectWithId()
                try alice.roundTrip("roomAdd r", #"{"status":"OK","context":"response","data":true,"messageCount":2}"#)
                try bob.roundTrip("roomAdd r", #"{"status":"OK","context":"response","data":true,"messageCount":2}"#)
                try bob.roundTrip("say r first", #"{"status":"OK","context":"response","data":null,"messageCount":3}"#)
                #expect(Self.hears(alice, #""message":"first""#, within: 2))
                usleep(1_200_000)  // (a probe went through: the subscription was live)
                proxy.freezeSubscribers()
                let frozenAt = Deadline.now()
                var heardAt: Double?
                var i = 0
                while Deadline.now() - frozenAt < 8 && heardAt == nil {
                    i += 1
                    try bob.roundTrip("say r p\(i)", #"{"status":"OK","context":"response","data":null,"messageCount":\#(3 + i)}"#)
                    if Self.hears(alice, #""message":"p"#, within: 0.2) { heardAt = Deadline.now() }
                }
                let heard = try #require(heardAt, "alice heard nothing for 8 s after her subscriber went silent")
                print("silent subscriber: chat back \(Int((heard - frozenAt) * 1000)) ms after the subscription went silent")
                #expect(heard - frozenAt <= 5)
                #expect(a.stderrText().contains("redis.subscriber.silent"))
            }
        }
    }

    @Test("say while Redis is unreachable: an error reply, and no member hears it (not even on the same worker)")
    func sayWithRedisDown() throws {
        let redis = try RedisServer()
        defer { redis.stop() }
        try withHerald(Self.options(redis.url)) { server in
            let (alice, _) = try server.connectWithId()
            let (amy, _) = try server.connectWithId()
            try alice.roundTrip("roomAdd r", #"{"status":"OK","context":"response","data":true,"messageCount":2}"#)
            try amy.roundTrip("roomAdd r", #"{"status":"OK","context":"response","data":true,"messageCount":2}"#)
            redis.kill()
            usleep(300_000)  // (the worker sees the connection close)
            try alice.roundTrip("say r half a message",
                                #"{"status":"room bus unavailable: message not sent","context":"response","data":null,"messageCount":3}"#)
            try amy.expectNoData(for: 0.3)
            try redis.start()
            try RedisBusTests.eventually(10, "say accepted again") {
                try alice.send("say r back")
                return try alice.readJSON()["status"]?.stringValue == "OK"
            }
            #expect(Self.hears(amy, "\"back\"", within: 2))
        }
    }

    @Test("bad sentinel URIs: exit status 2 naming what is wrong, never the password; unreachable sentinels are not an error")
    func configuration() throws {
        for (url, complaint) in [("redis-sentinel://:hunter2@127.0.0.1:26379", "no master name"),
                                 ("redis-sentinel://:hunter2@127.0.0.1:26379/x#m", "database"),
                                 ("redis-sentinel://:hunter2@127.0.0.1:99999#m", "bad sentinel address"),
                                 ("redis-sentinel://:hunter2@#m", "empty sentinel address")] {
            let (status, _, stderr) = try runHerald(["start", "--port", "0", "--redis", url])
            #expect(status == HeraldTestSupport.ExitStatus.exited(2), "\(url): \(status) \(stderr)")
            #expect(stderr.contains(complaint), "\(url): \(stderr)")
            #expect(!stderr.contains("hunter2"), "\(stderr)")
        }
        // Nothing listens there: herald serves what needs no Redis and keeps asking.
        let closed = try FreePort.pick()
        try withHerald(Self.options("redis-sentinel://127.0.0.1:\(closed)#mymaster")) { server in
            let (client, _) = try server.connectWithId()
            try client.roundTrip("randomNumber", #"{"randomNumber":<NUM>,"context":"response","messageCount":2}"#)
            try client.roundTrip("roomAdd r", #"{"status":"the room could not be joined (<ANY>)","context":"response","data":false,"messageCount":3}"#)
            usleep(1_500_000)
            try server.requireServing("with no sentinel reachable")
            #expect(server.stderrText().contains("redis.sentinel.unanswered"))
        }
    }
}
