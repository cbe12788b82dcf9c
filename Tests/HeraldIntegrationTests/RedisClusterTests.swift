import Foundation
import Glibc
import Testing
@testable import HeraldTestSupport

/// Issue 11: Herald on a real Redis Cluster (3 masters, 3 replicas) through
/// `--redis redis-cluster://…`, two herald processes standing in for two hosts.
@Suite("Redis Cluster: the protocol across hosts on a 3+3 cluster, and a master failover", .serialized)
struct RedisClusterTests {
    static func withTwoHosts(_ body: (HeraldProcess, HeraldProcess, RedisClusterSetup) throws -> Void) throws {
        let cluster = try RedisClusterSetup()
        defer { cluster.stop() }
        func options(_ hostName: String) -> HeraldOptions {
            var options = HeraldOptions([("defaultRoom", "")])
            options.extraArguments = ["--redis", cluster.url]
            options.hostName = hostName
            return options
        }
        try withHerald(options("web1")) { a in
            try withHerald(options("web2")) { b in try body(a, b, cluster) }
        }
    }

    /// Rooms whose channels hash to slots on three different masters, by the cluster's
    /// own `CLUSTER KEYSLOT`.
    static func roomsOnEveryShard(_ cluster: RedisClusterSetup) throws -> [(room: String, master: UInt16)] {
        var byMaster: [UInt16: String] = [:]
        let port = cluster.nodes[0].port
        for index in 0..<200 where byMaster.count < 3 {
            let room = "room\(index)"
            guard let slot = Int(try RedisClusterSetup.query(port, "CLUSTER KEYSLOT herald:room:\(room)")),
                  let master = try cluster.master(ofSlot: slot) else { continue }
            if byMaster[master] == nil { byMaster[master] = room }
        }
        return byMaster.map { ($0.value, $0.key) }.sorted { $0.room < $1.room }
    }

    /// Waits until both hosts see each other in the cluster-wide stats (the slot map is
    /// loaded and the heartbeats are in).
    static func waitForBoth(_ clients: [LineClient]) throws {
        try RedisBusTests.eventually(10, "both workers in the cluster stats") {
            for client in clients {
                try client.send("status")
                guard try client.readJSON()["stats"]?["cluster"]?["workers"]?.intValue == 2 else { return false }
            }
            return true
        }
    }

    static func serverID(_ client: LineClient) throws -> String {
        try client.send("status")
        return try client.readJSON()["id"]?.stringValue ?? ""
    }

    @Test("requests made while the first slot map is asked for wait for it: join, cache and say right after start are answered OK")
    func requestsBeforeTheFirstMap() throws {
        let cluster = try RedisClusterSetup()
        defer { cluster.stop() }
        // The first seed takes 0.7 s to refuse CLUSTER SHARDS: the map comes from the next.
        let slowSeed = try FakeSentinel(naming: 1, answerDelay: 0.7)
        defer { slowSeed.stop() }
        var options = HeraldOptions([("defaultRoom", "")])
        options.extraArguments = ["--redis", cluster.url.replacingOccurrences(of: "redis-cluster://", with: "redis-cluster://127.0.0.1:\(slowSeed.port),")]
        try withHerald(options) { server in
            try RedisAtStart.expectAnsweredOK(server)
        }
    }

    @Test("say, roomView, cacheTest, detailsView and status across two hosts; rooms on three shards use sharded pub/sub")
    func protocolAcrossHosts() throws {
        try Self.withTwoHosts { a, b, cluster in
            let rooms = try Self.roomsOnEveryShard(cluster)
            #expect(rooms.count == 3)
            let (alice, aliceID) = try a.connectWithId()
            let (bob, bobID) = try b.connectWithId()
            try Self.waitForBoth([alice, bob])
            for (room, _) in rooms {
                for client in [alice, bob] {
                    try client.send("roomAdd \(room)")
                    let reply = try client.readJSON()
                    #expect(reply["data"]?.boolValue == true, "roomAdd \(room): \(reply)")
                }
            }
            for (room, master) in rooms {
                try alice.send("say \(room) hello \(room) from a")
                #expect(try alice.readJSON()["status"]?.stringValue == "OK")
                try bob.expect(#"{"message":"hello \#(room) from a","room":"\#(room)","from":"\#(aliceID)","context":"user","sentAt":<NUM>}"#)
                try bob.send("say \(room) hello \(room) from b")
                #expect(try bob.readJSON()["status"]?.stringValue == "OK")
                try alice.expect(#"{"message":"hello \#(room) from b","room":"\#(room)","from":"\#(bobID)","context":"user","sentAt":<NUM>}"#)
                // The channel is a shard channel, on the master that owns its slot only.
                #expect(try RedisClusterSetup.query(master, "PUBSUB SHARDNUMSUB herald:room:\(room)") == "herald:room:\(room)\n2")
                #expect(try RedisClusterSetup.query(master, "PUBSUB NUMSUB herald:room:\(room)") == "herald:room:\(room)\n0")
                for client in [alice, bob] {
                    try client.send("roomView \(room)")
                    let view = try client.readJSON()
                    #expect(Set(view["data"]?["members"]?.keys ?? []) == [aliceID, bobID], "roomView \(room): \(view)")
                }
            }
            for (client, value) in [(alice, "1"), (bob, "2")] {
                try client.send(#"{"action":"cacheTest","params":{"key":"k\#(value)","value":\#(value)}}"#)
                let reply = try client.readJSON()
                let results = reply["cacheTestResults"]
                #expect(results?["saveResp"]?.boolValue == true, "cacheTest: \(reply)")
                #expect(results?["sizeResp"]?.intValue == 1)
                #expect(results?["loadResp"]?["value"]?.intValue == Int64(value))
                #expect(results?["deleteResp"]?.boolValue == true)
            }
            try alice.send("detailsView")
            let details = try alice.readJSON()
            #expect(Set(details["data"]?["rooms"]?.arrayValue?.compactMap(\.stringValue) ?? []) == Set(rooms.map(\.room)),
                    "detailsView: \(details)")
            try alice.send("status")
            let stats = try alice.readJSON()["stats"]?["cluster"]
            #expect(stats?["workers"]?.intValue == 2)
            #expect(stats?["connections"]?.intValue == 2)
            #expect(stats?["rooms"]?.intValue == 3)
            // herald status names the masters its worker is on.
            let masters = rooms.map { "127.0.0.1:\($0.master) master" }.sorted().joined(separator: ", ")
            try RedisBusTests.eventually(5, "herald status listing the three masters") {
                try ClusterTests.status(a)["workers"]?.arrayValue?.first?["redisNode"]?.stringValue == masters
            }
            try bob.roundTrip("roomLeave \(rooms[0].room)", #"{"status":"OK","context":"response","data":true,"messageCount":<NUM>}"#)
            try alice.send("roomView \(rooms[0].room)")
            #expect(Set(try alice.readJSON()["data"]?["members"]?.keys ?? []) == [aliceID])
        }
    }

    @Test("the master holding membership and a room killed under load: chat, roomView and cache back within 2 s of the promotion")
    func masterFailover() throws {
        try Self.withTwoHosts { a, b, cluster in
            let rooms = try Self.roomsOnEveryShard(cluster)
            #expect(rooms.count == 3)
            let membershipSlot = Int(try RedisClusterSetup.query(cluster.nodes[0].port, "CLUSTER KEYSLOT {herald:}rooms")) ?? -1
            let victim = try #require(try cluster.master(ofSlot: membershipSlot))
            let (alice, aliceID) = try a.connectWithId()
            let (bob, bobID) = try b.connectWithId()
            try Self.waitForBoth([alice, bob])
            let ids = (try Self.serverID(alice), try Self.serverID(bob))
            for (room, _) in rooms {
                for client in [alice, bob] {
                    try client.send("roomAdd \(room)")
                    #expect(try client.readJSON()["data"]?.boolValue == true)
                }
            }
            struct Round { var sentAt: Double; var said = 0; var viewOK = false; var cacheOK = false }
            var rounds: [Round] = []
            var heard: Set<String> = []
            var killedAt: Double?
            var promotedAt: Double?
            // Rooms whose say was refused: only the one on the killed master, for a while.
            var refused: Set<String> = []
            var refusals = 0
            let started = Deadline.now()
            func readBob(timeout: Double) throws -> JSON? {
                while true {
                    let reply = try bob.readJSON(timeout: timeout)
                    if reply["context"]?.stringValue == "user" {
                        heard.insert("\(reply["room"]?.stringValue ?? "") \(reply["message"]?.stringValue ?? "")")
                    } else {
                        return reply
                    }
                }
            }
            while Deadline.now() - started < 20 {
                let now = Deadline.now()
                if killedAt == nil && now - started > 1 {
                    cluster.kill(port: victim)
                    killedAt = Deadline.now()
                }
                if killedAt != nil && promotedAt == nil, let owner = try? cluster.master(ofSlot: membershipSlot), owner != victim {
                    promotedAt = Deadline.now()
                }
                if let promotedAt, Deadline.now() - promotedAt > 4 { break }
                let index = rounds.count
                var round = Round(sentAt: Deadline.now())
                for (room, _) in rooms { try alice.send("say \(room) n\(index)") }
                for (room, _) in rooms {
                    let reply = try alice.readJSON(timeout: 5)  // a reply, always (OK or an error)
                    #expect(reply["context"]?.stringValue == "response")
                    let status = reply["status"]?.stringValue ?? ""
                    if status != "OK" {
                        #expect(status == "room bus unavailable: message not sent", "say \(room): \(reply)")
                        refused.insert(room)
                        refusals += 1
                    }
                }
                try alice.send("roomView \(rooms[0].room)")
                let view = try alice.readJSON(timeout: 5)
                round.viewOK = Set(view["data"]?["members"]?.keys ?? []) == [aliceID, bobID]
                try bob.send(#"{"action":"cacheTest","params":{"key":"f","value":\#(index)}}"#)
                let cache = try #require(try readBob(timeout: 5))
                round.cacheOK = cache["cacheTestResults"]?["loadResp"]?["value"]?.intValue == Int64(index)
                rounds.append(round)
                usleep(50_000)
            }
            // Whatever is still on its way.
            let drainEnd = Deadline(1)
            while !drainEnd.passed {
                guard let line = try? bob.readJSON(timeout: 0.3) else { break }
                if line["context"]?.stringValue == "user" {
                    heard.insert("\(line["room"]?.stringValue ?? "") \(line["message"]?.stringValue ?? "")")
                }
            }
            func works(_ index: Int) -> Bool {
                rounds[index].viewOK && rounds[index].cacheOK && rooms.allSatisfy { heard.contains("\($0.room) n\(index)") }
            }
            let promoted = try #require(promotedAt, "the replica was never promoted")
            let killed = try #require(killedAt)
            var firstOfTheRest = rounds.count
            while firstOfTheRest > 0 && works(firstOfTheRest - 1) { firstOfTheRest -= 1 }
            #expect(firstOfTheRest < rounds.count - 5, "never recovered: \(rounds.count) rounds")
            let recovered = firstOfTheRest < rounds.count ? rounds[firstOfTheRest].sentAt : Deadline.now()
            let brokenRounds = (0..<rounds.count).filter { !works($0) }.count
            print("redis-cluster failover: promoted \(String(format: "%.2f", promoted - killed)) s after the kill; "
                  + "working again \(String(format: "%.2f", recovered - promoted)) s after the promotion; "
                  + "\(brokenRounds) of \(rounds.count) rounds affected")
            #expect(recovered - promoted <= 2.0, "recovered \(recovered - promoted) s after the promotion")
            let victimRoom = try #require(rooms.first { $0.master == victim }?.room)
            #expect(refused.isSubset(of: [victimRoom]), "refused in \(refused), the killed master has \(victimRoom)")
            #expect(refusals > 0, "no say refused while the master of \(victimRoom) was gone")
            print("redis-cluster failover: \(refusals) says refused, all in \(victimRoom)")
            // No worker restarted: the same server ids.
            #expect(try Self.serverID(alice) == ids.0)
            #expect(try Self.serverID(bob) == ids.1)
        }
    }

    @Test("a room's slot handed to another master (a resharding): its members are resubscribed there and chat follows within 2 s")
    func slotMoved() throws {
        try Self.withTwoHosts { a, b, cluster in
            // The slot map node 0 gives may still name a node that a failover earlier in
            // the suite made a replica: wait until every master it names says so itself.
            var rooms = try Self.roomsOnEveryShard(cluster)
            try RedisBusTests.eventually(20, "the masters the slot map names answer ROLE master") {
                rooms = try Self.roomsOnEveryShard(cluster)
                return rooms.count >= 2 && rooms.allSatisfy { (try? RedisClusterSetup.query($0.master, "ROLE"))?.hasPrefix("master") == true }
            }
            let (room, from) = rooms[0]
            let to = rooms[1].master
            let slot = Int(try RedisClusterSetup.query(from, "CLUSTER KEYSLOT herald:room:\(room)")) ?? -1
            let (alice, aliceID) = try a.connectWithId()
            let (bob, _) = try b.connectWithId()
            try Self.waitForBoth([alice, bob])
            for client in [alice, bob] {
                try client.send("roomAdd \(room)")
                #expect(try client.readJSON()["data"]?.boolValue == true)
            }
            try alice.send("say \(room) before")
            _ = try alice.readJSON()
            try bob.expect(#"{"message":"before","room":"\#(room)","from":"\#(aliceID)","context":"user","sentAt":<NUM>}"#)
            try cluster.moveEmptySlot(slot, to: to)
            let movedAt = Deadline.now()
            var index = 0
            try RedisBusTests.eventually(2, "chat in \(room) through its new master") {
                index += 1
                try alice.send("say \(room) after \(index)")
                _ = try alice.readJSON()
                guard let heard = try? bob.readJSON(timeout: 0.2) else { return false }
                while (try? bob.readJSON(timeout: 0.05)) != nil {}  // (earlier ones, late)
                return heard["message"]?.stringValue?.hasPrefix("after") == true
            }
            print("redis-cluster slot moved: chat through the new master after \(String(format: "%.2f", Deadline.now() - movedAt)) s")
            #expect(try RedisClusterSetup.query(to, "PUBSUB SHARDNUMSUB herald:room:\(room)") == "herald:room:\(room)\n2")
            #expect(try RedisClusterSetup.query(from, "PUBSUB SHARDNUMSUB herald:room:\(room)") == "herald:room:\(room)\n0")
        }
    }

    @Test("a malformed redis-cluster URI, or a seed that answers but is no cluster node: exit 2, naming it, never the password")
    func configurationErrors() throws {
        let port = try FreePort.pick()
        let start = ["start", "--port", String(port), "--bind", "127.0.0.1", "--workers", "1", "--redis"]
        let malformed = try runHerald(start + ["redis-cluster://:hunter2@127.0.0.1:notaport,127.0.0.1:7001"], timeout: 10)
        #expect(malformed.status == .exited(2), "\(malformed.status): \(malformed.stderr)")
        #expect(malformed.stderr.contains("redis-cluster://") && malformed.stderr.contains("bad port"), "\(malformed.stderr)")
        #expect(!malformed.stderr.contains("hunter2"))
        let plain = try RedisServer(password: "hunter2")
        defer { plain.stop() }
        let notCluster = try runHerald(start + ["redis-cluster://:hunter2@127.0.0.1:\(plain.port)"], timeout: 10)
        #expect(notCluster.status == .exited(2), "\(notCluster.status): \(notCluster.stderr)")
        #expect(notCluster.stderr.contains("no seed answers as a Redis Cluster node")
                && notCluster.stderr.contains("cluster support disabled"), "\(notCluster.stderr)")
        #expect(!notCluster.stderr.contains("hunter2"))
    }

    @Test("unreachable seeds at start are no configuration error: herald serves, and Redis requests get an error in bounded time")
    func unreachableSeeds() throws {
        var options = HeraldOptions([("defaultRoom", "")])
        options.extraArguments = ["--redis", "redis-cluster://127.0.0.1:\(try FreePort.pick()),127.0.0.1:\(try FreePort.pick())"]
        try withHerald(options) { h in
            let (client, _) = try h.connectWithId()
            try client.roundTrip("randomNumber", #"{"randomNumber":<NUM>,"context":"response","messageCount":2}"#)
            let started = Deadline.now()
            try client.roundTrip(#"{"action":"cacheTest","params":{"key":"k","value":"v"}}"#,
                                 #"{"error":"Error: the cache is unavailable (<ANY>)","context":"response","messageCount":3}"#, timeout: 5)
            #expect(Deadline.now() - started < 3)
            try client.send("roomAdd r")
            #expect(try client.readJSON(timeout: 5)["data"]?.boolValue == false)
            try h.requireServing("with no cluster node reachable")
        }
    }
}
