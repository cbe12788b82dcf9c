import Foundation
import HeraldCore
import HeraldLoop
import Testing
@testable import HeraldRedis
@testable import HeraldTestSupport

/// A say is answered once it is published; a connection to Redis that breaks before
/// Redis ran the PUBLISH must not lose it (seen at a million connections: Redis busy
/// with a long script, the publisher's command timeout, the say heard only on the
/// sender's worker). The client sends again what was not answered, and a receiver drops
/// a message it heard before.
@Suite struct RedisPublishReplayTests {
    /// The publisher's connections go silent (a proxy swallows them) with a PUBLISH in
    /// them; its command timeout drops the connection, it connects again and sends the
    /// PUBLISH again: the other worker hears it exactly once.
    @Test func publishLostWithItsConnectionIsSentAgainAndHeardOnce() throws {
        let redis = try RedisServer()
        let proxy = try BlackholeProxy(to: redis.port)
        defer { proxy.stop() }
        let direct = try RedisEndpoint.parse(url: redis.url)
        let proxied = try RedisEndpoint.parse(url: proxy.url)
        let heard = Shared<[String]>([])
        let failure = runOnLoopThread(seconds: 30) { done in
            let publisher = RedisBus(endpoint: proxied, workerID: "publisher")
            let receiver = RedisBus(endpoint: direct, workerID: "receiver")
            publisher.start(membership: Membership(), deliver: { _, _, _ in }, deliveredAll: {}, drained: {})
            receiver.start(membership: Membership(), deliver: { room, line, message in
                if !message.isOwn { heard.state.withLock { $0.append("\(room) \(String(decoding: line, as: UTF8.self))") } }
            }, deliveredAll: {}, drained: {})
            Task.onLoop {
                @LoopActor func finish(_ failure: String?) async {
                    publisher.stop()
                    receiver.stop()
                    await Self.pause(300)  // (the clients' last replies, before the loop ends)
                    done(failure)
                }
                do {
                    try await receiver.join(room: "r", member: RoomMember(id: "m1", joinedAt: 1))
                    try await publisher.join(room: "r", member: RoomMember(id: "m2", joinedAt: 1))
                    publisher.publish(room: "r", senderID: "x", line: Array("before".utf8))
                    guard await Self.waitFor({ heard.state.withLock { $0.count } == 1 }) else { return await finish("the first message was not heard") }
                    proxy.freezeOpenConnections()
                    publisher.publish(room: "r", senderID: "x", line: Array("lost with its connection".utf8))
                    // A command behind it, for the timeout that drops the connection.
                    _ = try? await publisher.commands.command([Array("PING".utf8)])
                    guard await Self.waitFor({ heard.state.withLock { $0.count } == 2 }) else {
                        return await finish("the PUBLISH made before the connection broke was never heard (\(heard.state.withLock { $0 }))")
                    }
                    guard let client = publisher.commands as? RedisClient, client.republished >= 1 else {
                        return await finish("not sent again by the client")
                    }
                    publisher.publish(room: "r", senderID: "x", line: Array("after".utf8))
                    guard await Self.waitFor({ heard.state.withLock { $0.count } >= 3 }) else { return await finish("the message after was not heard") }
                    await Self.pause(300)  // (a repeat would come by now)
                    await finish(nil)
                } catch {
                    await finish("bus: \(error)")
                }
            }
        }
        #expect(failure == nil)
        #expect(heard.state.withLock { $0 } == ["r before", "r lost with its connection", "r after"])
    }

    /// A worker serves before its Redis connection is up: a say in those first
    /// milliseconds (CI saw one 3 ms after start) is taken and sent once the connection
    /// is ready, not refused with `room bus unavailable`.
    @Test func aPublishWhileConnectingIsSentOnceConnected() throws {
        let redis = try RedisServer()
        let endpoint = try RedisEndpoint.parse(url: redis.url)
        let heard = Shared<[String]>([])
        let failure = runOnLoopThread(seconds: 30) { done in
            let receiver = RedisBus(endpoint: endpoint, workerID: "receiver")
            receiver.start(membership: Membership(), deliver: { room, line, message in
                if !message.isOwn { heard.state.withLock { $0.append("\(room) \(String(decoding: line, as: UTF8.self))") } }
            }, deliveredAll: {}, drained: {})
            Task.onLoop {
                var publisher: RedisBus?
                @LoopActor func finish(_ failure: String?) async {
                    publisher?.stop()
                    receiver.stop()
                    await Self.pause(300)  // (the clients' last replies, before the loop ends)
                    done(failure)
                }
                do {
                    try await receiver.join(room: "r", member: RoomMember(id: "m1", joinedAt: 1))
                    let bus = RedisBus(endpoint: endpoint, workerID: "publisher")
                    publisher = bus
                    bus.start(membership: Membership(), deliver: { _, _, _ in }, deliveredAll: {}, drained: {})
                    // (Same loop turn: the connection cannot be up yet.)
                    guard let client = bus.commands as? RedisClient, client.state == .connecting else {
                        return await finish("expected the publisher to be connecting right after start")
                    }
                    guard bus.acceptsPublish(room: "r") else { return await finish("a say while connecting would be refused") }
                    bus.publish(room: "r", senderID: "x", line: Array("while connecting".utf8))
                    bus.publish(room: "r", senderID: "x", line: Array("still connecting".utf8))
                    guard await Self.waitFor({ heard.state.withLock { $0.count } == 2 }) else {
                        return await finish("not heard: \(heard.state.withLock { $0 })")
                    }
                    guard client.republished == 0 else { return await finish("counted as sent again: \(client.republished)") }
                    await Self.pause(300)  // (a repeat would come by now)
                    await finish(nil)
                } catch {
                    await finish("bus: \(error)")
                }
            }
        }
        #expect(failure == nil)
        #expect(heard.state.withLock { $0 } == ["r while connecting", "r still connecting"])
    }

    /// A message Redis ran whose answer was lost comes again: the receiver drops the
    /// repeat by its publisher, channel and sequence (and keeps another publisher's
    /// message with the same sequence).
    @Test func aRepeatedMessageIsDeliveredOnce() throws {
        let redis = try RedisServer()
        let endpoint = try RedisEndpoint.parse(url: redis.url)
        let heard = Shared<[String]>([])
        let failure = runOnLoopThread(seconds: 30) { done in
            let receiver = RedisBus(endpoint: endpoint, workerID: "receiver")
            receiver.start(membership: Membership(), deliver: { _, line, _ in
                heard.state.withLock { $0.append(String(decoding: line, as: UTF8.self)) }
            }, deliveredAll: {}, drained: {})
            Task.onLoop {
                do {
                    try await receiver.join(room: "r", member: RoomMember(id: "m1", joinedAt: 1))
                    @LoopActor func frame(_ origin: String, _ sequence: UInt64, _ line: String) -> [UInt8] {
                        var message: [UInt8] = []
                        Array(line.utf8).withUnsafeBytes {
                            BusFrame.encode(header: BusFrame.header(origin: Array(origin.utf8)), sequence: sequence, line: $0, into: &message)
                        }
                        return message
                    }
                    let channel = Array(receiver.channelName("r").utf8)
                    for (origin, sequence, line) in [("a", 1, "a1"), ("a", 2, "a2"), ("a", 2, "a2 again"), ("b", 2, "b2"), ("a", 1, "a1 again"), ("a", 3, "a3")] {
                        _ = try await receiver.commands.command([Array("PUBLISH".utf8), channel, frame(origin, UInt64(sequence), line)])
                    }
                    let all = await Self.waitFor({ heard.state.withLock { $0.count } >= 4 })
                    await Self.pause(300)  // (a repeat would come by now)
                    let dropped = receiver.repeatsDropped
                    receiver.stop()
                    await Self.pause(300)
                    done(!all ? "not heard" : dropped != 2 ? "\(dropped) repeats dropped, 2 sent" : nil)
                } catch {
                    receiver.stop()
                    await Self.pause(300)
                    done("bus: \(error)")
                }
            }
        }
        #expect(failure == nil)
        #expect(heard.state.withLock { $0 } == ["a1", "a2", "b2", "a3"])
    }

    @LoopActor static func pause(_ milliseconds: Int) async {
        await withCheckedContinuation { (resume: CheckedContinuation<Void, Never>) in
            EventLoop.current.schedule(afterMilliseconds: milliseconds) { resume.resume() }
        }
    }

    @LoopActor static func waitFor(_ condition: () -> Bool, seconds: Double = 15) async -> Bool {
        let deadline = Clock.monotonicNanos() + UInt64(seconds * 1e9)
        while !condition() {
            if Clock.monotonicNanos() > deadline { return false }
            await pause(20)
        }
        return true
    }
}
