import Foundation
import HeraldCore
import HeraldLoop
import Synchronization
import Testing
@testable import HeraldRedis
@testable import HeraldTestSupport

/// The bus's registration and reap against a live redis-server.
@Suite struct RedisBusLiveTests {
    /// A join made while the bus is still connecting is queued behind the handshake, so
    /// it reaches Redis before the first clear-and-register of this worker, while the
    /// worker records it only once it is answered (after that clear): the registration
    /// must include it (it was wiped before: seen once in S5RoomsChatTests).
    @Test func joinWhileConnectingSurvivesTheFirstRegistration() throws {
        let redis = try RedisServer()
        let failure = try Self.withBus(redis, workerID: "early") { bus in
            do {
                try await bus.join(room: "r", member: RoomMember(id: "m1", joinedAt: 1))
                try await bus.join(room: "r", member: RoomMember(id: "m2", joinedAt: 2))
                try await bus.leave(room: "r", memberID: "m2", lastHere: false)
            } catch {
                return "join: \(error)"
            }
            // (Same connection: after the registration. Before the bus's clean stop,
            // which removes its members.)
            let m1 = try? await bus.commands.command([Array("HEXISTS".utf8), Array("herald:r:r".utf8), Array("m1".utf8)])
            let m2 = try? await bus.commands.command([Array("HEXISTS".utf8), Array("herald:r:r".utf8), Array("m2".utf8)])
            bus.stop()
            if m1?.integer != 1 { return "the join made while connecting was wiped (HEXISTS m1: \(String(describing: m1)))" }
            if m2?.integer != 0 { return "the member that left was registered again (HEXISTS m2: \(String(describing: m2)))" }
            return nil
        }
        #expect(failure == nil)
    }

    /// Many workers' worth of registry entries: a reap finds the dead ones by their
    /// expiry alone, removes their members, and `stats` counts the live ones (and drains
    /// the set of ids earlier versions kept).
    @Test func reapWithManyWorkers() throws {
        let redis = try RedisServer()
        let live = 150, dead = 60
        for n in 0..<(live + dead) {
            let id = "w\(n)"
            let isLive = n < live
            _ = try redis.command("ZADD herald:alive \(isLive ? "99999999999999" : "1") \(id)")
            if isLive { _ = try redis.command("SET herald:w:\(id) 2") }
            _ = try redis.command("HSET herald:r:big m\(n) \"1 \(id)\"")
            _ = try redis.command("SADD herald:w:\(id):rooms big")
        }
        // An earlier version's worker, dead, in the old set.
        _ = try redis.command("SADD herald:workers old1")
        _ = try redis.command("HSET herald:r:big mold \"1 old1\"")
        _ = try redis.command("SADD herald:w:old1:rooms big")
        _ = try redis.command("SADD herald:rooms big")
        let result = Shared<ClusterStats?>(nil)
        let failure = try Self.withBus(redis, workerID: "me") { bus in
            do {
                // (The first reap, at the connect, removes at most 100 dead workers.)
                _ = try await bus.commands.command([Array("PING".utf8)])
                let stats = try await bus.stats()
                result.state.withLock { $0 = stats }
            } catch {
                return "stats: \(error)"
            }
            bus.stop()
            return nil
        }
        #expect(failure == nil)
        let stats = result.state.withLock { $0 }
        #expect(stats?.workers == live + 1)
        #expect(stats?.connections == 2 * live)
        #expect(stats?.rooms == 1)
        #expect(try redis.command("HLEN herald:r:big") == ":\(live)")
        #expect(try redis.command("ZCARD herald:alive") == ":\(live)")  // (and "me" left at its stop)
        #expect(try redis.command("EXISTS herald:w:w\(live):rooms") == ":0")
        #expect(try redis.command("EXISTS herald:workers") == ":0")
        #expect(try redis.command("EXISTS herald:w:old1:rooms") == ":0")
    }

    /// A reap removes at most its budget of dead workers' members and goes on where it
    /// stopped at the next run; the worker leaves the registry once all are gone. Each
    /// run is short (a host of stalled workers with 20,000 members each once held Redis
    /// for 5 s); a live worker's members are never touched.
    @Test func reapIsBoundedAndResumes() throws {
        let redis = try RedisServer()
        _ = try redis.command(#"EVAL "for i = 1, 2500 do redis.call('HSET', KEYS[1], 'd' .. i, '1 dead'); redis.call('SADD', KEYS[2], 'd' .. i) end" 2 herald:r:big herald:w:dead:r:big"#)
        _ = try redis.command(#"EVAL "for i = 1, 100 do redis.call('HSET', KEYS[1], 'o' .. i, '1 other') end" 1 herald:r:big"#)
        for i in 1...10 {
            _ = try redis.command("HSET herald:r:small s\(i) \"1 dead\"")
            _ = try redis.command("SADD herald:w:dead:r:small s\(i)")
        }
        _ = try redis.command("SADD herald:w:dead:rooms big small")
        _ = try redis.command("SADD herald:rooms big small")
        _ = try redis.command("ZADD herald:alive 1 dead")
        _ = try redis.command("ZADD herald:alive 99999999999999 other")
        _ = try redis.command("SET herald:w:other 100")
        let endpoint = try RedisEndpoint.parse(url: redis.url)
        let replies = Shared<[Int]>([])
        let failure = runOnLoopThread(seconds: 30) { done in
            let client = RedisClient(endpoint: endpoint, name: "test")
            client.start()
            Task.onLoop {
                let outcome = await Self.reapFourTimes(client, budget: 1_000)
                client.stop()
                switch outcome {
                case .success(let counts):
                    replies.state.withLock { $0 = counts }
                    done(nil)
                case .failure(let error):
                    done("reap: \(error)")
                }
            }
        }
        #expect(failure == nil)
        // 2,510 members, 1,000 a run: the worker is taken out of the registry by the third.
        #expect(replies.state.withLock { $0 } == [0, 0, 1, 0])
        #expect(try redis.command("HLEN herald:r:big") == ":100")
        #expect(try redis.command("EXISTS herald:r:small") == ":0")
        #expect(try redis.command("SCARD herald:rooms") == ":1")
        #expect(try redis.command("SISMEMBER herald:rooms big") == ":1")
        #expect(try redis.command("ZSCORE herald:alive dead") == "$-1")
        #expect(try redis.command("EXISTS herald:w:dead:rooms") == ":0")
        #expect(try redis.command("EXISTS herald:w:dead:r:big") == ":0")
    }

    @LoopActor static func reapFourTimes(_ client: RedisClient, budget: Int) async -> Result<[Int], any Error> {
        let reap = RedisScript(Lua.reap)
        let keys = [Array("herald:alive".utf8), Array("herald:rooms".utf8)]
        let arguments = [Array("herald:".utf8), [], Array("0".utf8), Array("0".utf8), Array(String(budget).utf8)]
        var counts: [Int] = []
        do {
            for _ in 0..<4 {
                let reply = try await reap.run(on: client, keys: keys, arguments: arguments)
                counts.append(reply.integer.map { Int($0) } ?? -1)
            }
        } catch {
            return .failure(error)
        }
        return .success(counts)
    }

    /// Clearing a worker reads the set of ids it joined to each room, not the room: a
    /// room of 20,000 members of another worker is not scanned (no HGETALL ran), the dead
    /// worker's members go, and an id it joined that a successor has taken over since (a
    /// handoff) stays. The bus keeps that set with its joins and leaves.
    @Test func clearReadsTheWorkersOwnMembersOnly() throws {
        let redis = try RedisServer()
        _ = try redis.command(#"EVAL "for i = 1, 20000 do redis.call('HSET', KEYS[1], 'o' .. i, '1 other') end" 1 herald:r:big"#)
        _ = try redis.command("ZADD herald:alive 99999999999999 other")
        _ = try redis.command("SET herald:w:other 20000")
        _ = try redis.command("ZADD herald:alive 1 dead")
        _ = try redis.command("SADD herald:w:dead:rooms big")
        for id in ["d1", "d2", "d3"] { _ = try redis.command("HSET herald:r:big \(id) \"1 dead\"") }
        _ = try redis.command("HSET herald:r:big moved \"1 other\"")
        _ = try redis.command("SADD herald:w:dead:r:big d1 d2 d3 moved")
        _ = try redis.command("SADD herald:rooms big")
        _ = try redis.command("CONFIG RESETSTAT")
        let failure = try Self.withBus(redis, workerID: "me") { bus in
            do {
                try await bus.join(room: "r", member: RoomMember(id: "m1", joinedAt: 1))
                try await bus.join(room: "r", member: RoomMember(id: "m2", joinedAt: 2))
                try await bus.leave(room: "r", memberID: "m2", lastHere: false)
                _ = try await bus.stats()  // (a reap, after the one at the connect)
                let key = Array("herald:w:me:r:r".utf8)
                let m1 = try await bus.commands.command([Array("SISMEMBER".utf8), key, Array("m1".utf8)])
                let m2 = try await bus.commands.command([Array("SISMEMBER".utf8), key, Array("m2".utf8)])
                bus.stop()
                if m1.integer != 1 || m2.integer != 0 { return "own set after join m1, m2, leave m2: m1 \(m1), m2 \(m2)" }
            } catch {
                return "bus: \(error)"
            }
            return nil
        }
        #expect(failure == nil)
        #expect(try redis.command("HLEN herald:r:big") == ":20001")
        #expect(try redis.command("HEXISTS herald:r:big d1") == ":0")
        #expect(try redis.command("HEXISTS herald:r:big moved") == ":1")
        #expect(try redis.command("EXISTS herald:w:dead:r:big") == ":0")
        let client = try LineClient(port: redis.port, connectTimeout: 1)
        defer { client.close() }
        try client.send("INFO commandstats")
        var stats = ""
        while let line = try? client.readLine(timeout: 0.5) { stats += line + "\n" }
        #expect(stats.contains("cmdstat_hmget"), "\(stats)")
        #expect(!stats.contains("cmdstat_hgetall"), "\(stats)")
    }

    /// A worker asking for a room's members is alive: its own members are listed even when
    /// its heartbeat key is not there yet (a roomView that reached Redis as the worker's
    /// connection came up, before its first heartbeat, made them vanish: seen in CI).
    @Test func roomViewKeepsTheAskingWorkersMembers() throws {
        let redis = try RedisServer()
        let failure = try Self.withBus(redis, workerID: "me") { bus in
            do {
                try await bus.join(room: "r", member: RoomMember(id: "m1", joinedAt: 1))
                _ = try await bus.commands.command([Array("DEL".utf8), Array("herald:w:me".utf8)])
                let members = try await bus.members(of: "r")
                bus.stop()
                if members.map(\.id) != ["m1"] { return "members without the heartbeat key: \(members)" }
            } catch {
                return "bus: \(error)"
            }
            return nil
        }
        #expect(failure == nil)
    }

    /// Starts a bus named `workerID` on `redis`, on a loop of its own thread, and runs
    /// `body` in a task there: its result is the failure (nil: none). `body` stops the bus
    /// when it is done with it.
    static func withBus(_ redis: RedisServer, workerID: String, seconds: Double = 30,
                        _ body: @escaping @LoopActor (RedisBus) async -> String?) throws -> String? {
        let endpoint = try RedisEndpoint.parse(url: redis.url)
        return runOnLoopThread(seconds: seconds) { done in
            let bus = RedisBus(endpoint: endpoint, workerID: workerID)
            bus.start(membership: Membership(), deliver: { _, _, _ in }, deliveredAll: {}, drained: {})
            Task.onLoop { done(await body(bus)) }
        }
    }
}
