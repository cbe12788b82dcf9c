import Foundation
import Glibc
import Testing
@testable import HeraldTestSupport

/// Issue 3: two herald processes (standing in for two hosts) on one redis-server.
@Suite("Redis: rooms, cache and failures across processes", .serialized)
struct RedisBusTests {
    /// Starts Redis and two single-worker herald processes pointed at it. No default
    /// room, so that every join is an explicit `roomAdd` whose reply means "visible".
    /// Each "host" has its own host name (a UTS namespace), as two machines would: by
    /// default `web1` and `web10`, whose server ids differ in length.
    static func withTwoHosts(prefixes: (String, String) = ("herald:", "herald:"),
                             hostNames: (String, String) = ("web1", "web10"),
                             settings: [(String, String)] = [],
                             _ body: (HeraldProcess, HeraldProcess, RedisServer) throws -> Void) throws {
        let redis = try RedisServer()
        defer { redis.stop() }
        func options(_ prefix: String, _ hostName: String) -> HeraldOptions {
            var options = HeraldOptions([("defaultRoom", ""), ("redisPrefix", prefix)] + settings)
            options.extraArguments = ["--redis", redis.url]
            options.hostName = hostName
            return options
        }
        try withHerald(options(prefixes.0, hostNames.0)) { a in
            try withHerald(options(prefixes.1, hostNames.1)) { b in try body(a, b, redis) }
        }
    }

    /// Connects and returns the client and its id (detailsView is messageCount 1).
    static func client(_ server: HeraldProcess) throws -> (LineClient, String) { try server.connectWithId() }

    /// Joins each client to `room` as its first request after `client`'s detailsView.
    static func join(_ room: String, _ clients: LineClient...) throws {
        for client in clients { try client.roundTrip("roomAdd \(room)", #"{"status":"OK","context":"response","data":true,"messageCount":2}"#) }
    }

    static func roomView(_ client: LineClient, _ room: String, _ n: Int) throws -> JSON {
        try client.send("roomView \(room)")
        let reply = try client.readJSON()
        guard reply["messageCount"]?.intValue == Int64(n), let data = reply["data"] else {
            throw HarnessError.mismatch("roomView \(room): unexpected reply \(reply)")
        }
        return data
    }

    static func memberIDs(_ view: JSON) -> Set<String> { Set(view["members"]?.keys ?? []) }

    /// Polls `body` every 100 ms until it returns true.
    static func eventually(_ seconds: Double, _ what: String, _ body: () throws -> Bool) throws {
        let deadline = Deadline(seconds)
        while !deadline.passed {
            if try body() { return }
            usleep(100_000)
        }
        throw HarnessError.timeout("\(what) within \(seconds) s")
    }

    @Test("say reaches the other process; roomView lists and counts both; joins are visible by their reply")
    func sayAndRoomViewAcrossProcesses() throws {
        try Self.withTwoHosts { a, b, _ in
            let (alice, aliceID) = try Self.client(a)
            let (bob, bobID) = try Self.client(b)
            #expect(aliceID != bobID)
            try Self.join("lobby", alice, bob)
            // Right after bob's join reply: alice's say reaches him, and a's roomView lists him.
            try alice.roundTrip("say lobby hello from a", #"{"status":"OK","context":"response","data":null,"messageCount":3}"#)
            try bob.expect(#"{"message":"hello from a","room":"lobby","from":"\#(aliceID)","context":"user","sentAt":<NUM>}"#)
            try bob.roundTrip("say lobby hello from b", #"{"status":"OK","context":"response","data":null,"messageCount":3}"#)
            try alice.expect(#"{"message":"hello from b","room":"lobby","from":"\#(bobID)","context":"user","sentAt":<NUM>}"#)
            for (client, n) in [(alice, 4), (bob, 4)] {
                let view = try Self.roomView(client, "lobby", n)
                #expect(Self.memberIDs(view) == [aliceID, bobID])
                #expect(view["membersCount"]?.intValue == 2)
            }
            // Messages said in order arrive in order, and the sender never hears itself.
            for i in 0..<50 { try alice.send("say lobby m\(i)") }
            for i in 0..<50 { try alice.expectOK("null", 5 + i) }
            for i in 0..<50 { try bob.expect(#"{"message":"m\#(i)","room":"lobby","from":"\#(aliceID)","context":"user","sentAt":<NUM>}"#) }
            try alice.expectNoData(for: 0.2)
        }
    }

    @Test("a burst of says in two rooms reaches the other process exactly once, in the order said (runs of one room gathered)")
    func burstInTwoRoomsKeepsOrder() throws {
        try Self.withTwoHosts { a, b, _ in
            let (alice, aliceID) = try Self.client(a)
            let (bob, _) = try Self.client(b)    // in both rooms
            let (carol, _) = try Self.client(b)  // in room x only
            try alice.roundTrip("roomAdd x", #"{"status":"OK","context":"response","data":true,"messageCount":2}"#)
            try alice.roundTrip("roomAdd y", #"{"status":"OK","context":"response","data":true,"messageCount":3}"#)
            try bob.roundTrip("roomAdd x", #"{"status":"OK","context":"response","data":true,"messageCount":2}"#)
            try bob.roundTrip("roomAdd y", #"{"status":"OK","context":"response","data":true,"messageCount":3}"#)
            try carol.roundTrip("roomAdd x", #"{"status":"OK","context":"response","data":true,"messageCount":2}"#)
            // Runs of one room of different lengths, some lines long enough (12 KB) that a
            // run passes the 16 KiB batch, all pipelined so that b reads many per read.
            var said: [(room: String, text: String)] = []
            let big = String(repeating: "z", count: 12_000)
            for i in 0..<400 {
                let room = (i / 7) % 3 == 2 ? "y" : "x"
                said.append((room, i % 50 == 49 ? "m\(i) \(big)" : "m\(i)"))
            }
            for (room, text) in said { try alice.send("say \(room) \(text)") }
            for i in 0..<said.count { try alice.expectOK("null", 4 + i) }
            func heard(_ client: LineClient, _ count: Int) throws -> [String] {
                try (0..<count).map { _ in
                    let line = try client.readJSON()
                    #expect(line["from"]?.stringValue == aliceID)
                    return "\(line["room"]?.stringValue ?? "?") \(line["message"]?.stringValue ?? "?")"
                }
            }
            #expect(try heard(bob, said.count) == said.map { "\($0.room) \($0.text)" })
            let inX = said.filter { $0.room == "x" }
            #expect(try heard(carol, inX.count) == inX.map { "x \($0.text)" })
            for client in [alice, bob, carol] { try client.expectNoData(for: 0.3) }
        }
    }

    @Test("hosts named web1 and web10: chat arrives byte-exact both ways, and no worker delivers its own echo")
    func hostsWithDifferentNames() throws {
        try Self.withTwoHosts(hostNames: ("web1", "web10")) { a, b, _ in
            let (alice, aliceID) = try Self.client(a)
            let (amy, amyID) = try Self.client(a)  // alice's neighbour: hears her once, not twice
            let (bob, bobID) = try Self.client(b)
            let (ben, benID) = try Self.client(b)
            for client in [alice, amy, bob, ben] {
                try client.roundTrip("roomAdd r", #"{"status":"OK","context":"response","data":true,"messageCount":2}"#)
            }
            try alice.send("status")
            let aID = try alice.readJSON()["id"]?.stringValue ?? ""
            try bob.send("status")
            let bID = try bob.readJSON()["id"]?.stringValue ?? ""
            #expect(aID.hasPrefix("web1-") && bID.hasPrefix("web10-"), "server ids \(aID), \(bID)")
            // Quotes, a backslash, braces, multi-byte UTF-8: every byte must survive.
            let message = #"héllo "web" {x} ✓ \ end"#
            let escaped = #"héllo \"web\" {x} ✓ \\ end"#
            for client in [amy, ben] { try client.send("status"); _ = try client.readJSON() }  // (same counts for all)
            var n = 4
            for (speaker, speakerID, hearers) in [(alice, aliceID, [amy, bob, ben]), (bob, bobID, [alice, amy, ben]),
                                                 (amy, amyID, [alice, bob, ben]), (ben, benID, [alice, amy, bob])] {
                try speaker.send("say r \(message) \(n)")
                try speaker.expectOK("null", 4)  // each says once
                for hearer in hearers {
                    let line = try hearer.readLine()
                    let expected = #"{"message":""# + escaped + " \(n)" + #"","room":"r","from":""# + speakerID
                        + #"","context":"user","sentAt":"#
                    #expect(line.hasPrefix(expected) && line.hasSuffix("}") && !line.dropFirst(expected.count).contains(","),
                            "heard \(line)")
                }
                n += 1
            }
            // Nobody hears anything twice, and no speaker hears itself.
            for client in [alice, amy, bob, ben] { try client.expectNoData(for: 0.3) }
        }
    }

    @Test("leaves and disconnects are gone from the other process's roomView within 1 s")
    func leavesAndDisconnects() throws {
        try Self.withTwoHosts { a, b, _ in
            let (alice, aliceID) = try Self.client(a)
            let (bob, bobID) = try Self.client(b)
            let (carol, carolID) = try Self.client(b)
            try Self.join("r", alice, bob, carol)
            #expect(Self.memberIDs(try Self.roomView(alice, "r", 3)) == [aliceID, bobID, carolID])
            try bob.roundTrip("roomLeave r", #"{"status":"OK","context":"response","data":true,"messageCount":3}"#)
            #expect(Self.memberIDs(try Self.roomView(alice, "r", 4)) == [aliceID, carolID])
            carol.close()
            var n = 5
            try Self.eventually(1, "carol gone after her disconnect") {
                defer { n += 1 }
                return Self.memberIDs(try Self.roomView(alice, "r", n)) == [aliceID]
            }
            // bob left: a say in r no longer reaches him.
            try alice.send("say r anyone")
            _ = try alice.readLine()
            try bob.expectNoData(for: 0.3)
        }
    }

    @Test("a killed process's members vanish from the other's roomView within 15 s")
    func killedProcess() throws {
        try Self.withTwoHosts { a, b, _ in
            let (alice, aliceID) = try Self.client(a)
            let (bob, _) = try Self.client(b)
            try Self.join("r", alice, bob)
            #expect(try Self.roomView(alice, "r", 3)["membersCount"]?.intValue == 2)
            // The whole "host": supervisor and worker at once (its own process group).
            Glibc.kill(-b.process.pid, SIGKILL)
            b.signal(SIGKILL)  // (marks the exit as the test's doing)
            _ = b.waitForExit(timeout: 5)
            let killedAt = Deadline.now()
            var n = 4
            try Self.eventually(15, "the killed process's member gone") {
                defer { n += 1 }
                return Self.memberIDs(try Self.roomView(alice, "r", n)) == [aliceID]
            }
            #expect(Deadline.now() - killedAt <= 15)
            try alice.send("status")
            let status = try alice.readJSON()
            #expect(status["stats"]?["cluster"]?["workers"]?.intValue == 1)
        }
    }

    @Test("cacheTest works through both; the cache is Redis (shared size, Redis-side expiry, no leftovers)")
    func sharedCache() throws {
        try Self.withTwoHosts { a, b, redis in
            let (alice, _) = try Self.client(a)
            let (bob, _) = try Self.client(b)
            // Two entries stored by "someone else" (far-future expiry) and one already expired.
            #expect(try redis.command("SET herald:c:x1 v") == "+OK")
            #expect(try redis.command("ZADD herald:cache 99999999999999 x1 99999999999999 x2 1 old") == ":3")
            try alice.roundTrip(#"{"action":"cacheTest","params":{"key":"k","value":{"n":[1,"two"]}}}"#,
                                #"{"cacheTestResults":{"saveResp":true,"sizeResp":3,"loadResp":{"key":"cacheTest_k","value":{"n":[1,"two"]},"expireTimestamp":<NUM>,"createdAt":<NUM>,"readAt":<NUM>},"deleteResp":true},"context":"response","messageCount":2}"#)
            try bob.roundTrip("cacheTest key=k value=v",
                              #"{"error":"Error: key is a required parameter for this action","context":"response","messageCount":2}"#)
            try bob.roundTrip(#"{"action":"cacheTest","params":{"key":"k","value":"v"}}"#,
                              #"{"cacheTestResults":{"saveResp":true,"sizeResp":3,"loadResp":{"key":"cacheTest_k","value":"v","expireTimestamp":<NUM>,"createdAt":<NUM>,"readAt":<NUM>},"deleteResp":true},"context":"response","messageCount":3}"#)
            #expect(try redis.command("EXISTS herald:c:cacheTest_k") == ":0")
            #expect(try redis.command("ZSCORE herald:cache cacheTest_k") == "$-1")
            #expect(try redis.command("ZSCORE herald:cache old") == "$-1")  // trimmed by size
        }
    }

    @Test("two clusters with different prefixes share one Redis without seeing each other")
    func prefixIsolation() throws {
        try Self.withTwoHosts(prefixes: ("blue:", "green:")) { a, b, redis in
            let (alice, aliceID) = try Self.client(a)
            let (bob, bobID) = try Self.client(b)
            try Self.join("r", alice, bob)
            #expect(Self.memberIDs(try Self.roomView(alice, "r", 3)) == [aliceID])
            #expect(Self.memberIDs(try Self.roomView(bob, "r", 3)) == [bobID])
            try alice.roundTrip("say r only blue", #"{"status":"OK","context":"response","data":null,"messageCount":4}"#)
            try bob.expectNoData(for: 0.3)
            #expect(try redis.command("HEXISTS blue:r:r \(aliceID)") == ":1")
            #expect(try redis.command("HEXISTS green:r:r \(bobID)") == ":1")
            #expect(try redis.command("EXISTS herald:r:r") == ":0")
        }
    }

    @Test("Redis stopped and restarted under traffic: clear errors while down, recovery without restart")
    func redisRestart() throws {
        try Self.withTwoHosts { a, b, redis in
            let (alice, aliceID) = try Self.client(a)
            let (bob, bobID) = try Self.client(b)
            try Self.join("r", alice, bob)
            var n = 3
            redis.kill()
            // What needs no Redis keeps working, at once.
            for _ in 0..<20 {
                let started = Deadline.now()
                try alice.roundTrip("randomNumber", #"{"randomNumber":<NUM>,"context":"response","messageCount":\#(n)}"#)
                #expect(Deadline.now() - started < 1)
                n += 1
            }
            // What needs Redis gets a clear error within a bounded time (never a hang).
            var started = Deadline.now()
            try alice.roundTrip(#"{"action":"cacheTest","params":{"key":"k","value":"v"}}"#,
                                #"{"error":"Error: the cache is unavailable (<ANY>)","context":"response","messageCount":\#(n)}"#, timeout: 5)
            #expect(Deadline.now() - started < 3)
            n += 1
            started = Deadline.now()
            try alice.roundTrip("roomView r", #"{"status":"the room could not be read (<ANY>)","context":"response","messageCount":\#(n)}"#, timeout: 5)
            #expect(Deadline.now() - started < 3)
            n += 1
            try a.requireServing("while Redis is down")
            try redis.start()
            // Reconnects with backoff (at most 2 s apart), re-registers and resubscribes.
            try Self.eventually(10, "cacheTest working again after the Redis restart") {
                try alice.send(#"{"action":"cacheTest","params":{"key":"k","value":"v"}}"#)
                let reply = try alice.readJSON()
                n += 1
                return reply["cacheTestResults"] != nil
            }
            try Self.eventually(10, "both members registered again") {
                let view = try Self.roomView(alice, "r", n)
                n += 1
                return Self.memberIDs(view) == [aliceID, bobID]
            }
            try bob.roundTrip("say r back again", #"{"status":"OK","context":"response","data":null,"messageCount":3}"#)
            try alice.expect(#"{"message":"back again","room":"r","from":"\#(bobID)","context":"user","sentAt":<NUM>}"#)
        }
    }

    @Test("a stop while says are on their way from Redis: each member gets every say answered OK, then the goodbye")
    func stopDeliversWhatIsOnItsWay() throws {
        try Self.withTwoHosts { a, b, _ in
            let (alice, _) = try Self.client(a)
            let (bob, _) = try Self.client(b)
            try Self.join("lobby", alice, bob)
            guard let worker = WorkerMemory.workerPids(of: b).first else { throw HarnessError.mismatch("no worker under b") }
            // b's worker is paused (a starved CPU): what alice says waits in Redis and in
            // b's socket, and b is told to stop before it has read any of it.
            kill(worker, SIGSTOP)
            var paused = true
            defer { if paused { kill(worker, SIGCONT) } }
            let says = 2_000
            let padding = String(repeating: "p", count: 200)
            for i in 0..<says { try alice.send("say lobby m\(i) \(padding)") }
            for i in 0..<says { try alice.expectOK("null", 3 + i) }
            b.signal(SIGTERM)
            usleep(300_000)  // the supervisor passes the stop on to the paused worker
            kill(worker, SIGCONT)
            paused = false
            for i in 0..<says {
                let line = try bob.readLine(timeout: 10)
                try check(line.contains("\"message\":\"m\(i) \(padding)\""),
                          "say \(i) of \(says), all answered OK before the stop, was not delivered before: \(line.prefix(120))")
            }
            try bob.expect(ShutdownTests.shutdownBye, timeout: 5)
            try bob.expectClosed()
        }
    }

    @Test("status counts connections, rooms and workers across the cluster")
    func clusterStatus() throws {
        try Self.withTwoHosts { a, b, _ in
            let (alice, _) = try Self.client(a)
            let (bob, _) = try Self.client(b)
            let (carol, _) = try Self.client(b)
            try alice.roundTrip("roomAdd one", #"{"status":"OK","context":"response","data":true,"messageCount":2}"#)
            try bob.roundTrip("roomAdd two", #"{"status":"OK","context":"response","data":true,"messageCount":2}"#)
            _ = carol
            usleep(300_000)  // connection counts are reported 100 ms after they change
            try alice.send("status")
            let cluster = try alice.readJSON()["stats"]?["cluster"]
            #expect(cluster?["workers"]?.intValue == 2)
            #expect(cluster?["connections"]?.intValue == 3)
            #expect(cluster?["rooms"]?.intValue == 2)
        }
    }
}
