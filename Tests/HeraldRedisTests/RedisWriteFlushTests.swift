import Foundation
import HeraldLoop
import Testing
@testable import HeraldRedis
@testable import HeraldTestSupport

/// Commands are written in the loop's before-sleep pass: a command sent on a connected
/// client does not arm EPOLLOUT (an epoll_ctl to arm, one to disarm, an extra loop pass).
@Suite struct RedisWriteFlushTests {
    @Test func commandsOnAConnectedClientDoNotWaitForWritable() throws {
        let redis = try RedisServer()
        let endpoint = try RedisEndpoint.parse(url: redis.url)
        let counts = Shared<(replies: Int, waitsAfterReady: Int)>((0, -1))
        let failure = runOnLoopThread(seconds: 30) { done in
            let client = RedisClient(endpoint: endpoint, name: "test")
            var waitsAtReady = 0
            var replies = 0
            // One command per loop iteration, each sent after the previous reply.
            @LoopActor func next() {
                client.send([Array("PING".utf8)]) { reply in
                    if case .failure(let error) = reply { client.stop(); return done("\(error)") }
                    replies += 1
                    if replies < 50 { return next() }
                    counts.state.withLock { $0 = (replies, client.writableWaits - waitsAtReady) }
                    client.stop()
                    done(nil)
                }
            }
            client.onReady = {
                waitsAtReady = client.writableWaits
                next()
            }
            client.start()
        }
        let (replies, waits) = counts.state.withLock { $0 }
        #expect(failure == nil)
        #expect(replies == 50)
        #expect(waits == 0, "EPOLLOUT armed \(waits) times for 50 commands on a connected client")
    }
}
