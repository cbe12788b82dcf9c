import Foundation
import HeraldLoop
import Synchronization
import Testing
@testable import HeraldRedis
@testable import HeraldTestSupport

/// Commands are written in the loop's before-sleep pass: a command sent on a connected
/// client does not arm EPOLLOUT (an epoll_ctl to arm, one to disarm, an extra loop pass).
@Suite struct RedisWriteFlushTests {
    @Test func commandsOnAConnectedClientDoNotWaitForWritable() throws {
        let redis = try RedisServer()
        let endpoint = try RedisEndpoint.parse(url: redis.url)
        let result = Outcome()
        let thread = Thread {
            try? EventLoop.current.run {
                let client = RedisClient(endpoint: endpoint, name: "test")
                var waitsAtReady = 0
                var replies = 0
                // One command per loop iteration, each sent after the previous reply.
                @LoopActor func next() {
                    client.send([Array("PING".utf8)]) { reply in
                        if case .failure(let error) = reply { result.state.withLock { $0.failure = "\(error)" } }
                        replies += 1
                        if replies < 50 { return next() }
                        result.state.withLock { $0 = (replies, client.writableWaits - waitsAtReady, $0.failure) }
                        client.stop()
                        EventLoop.current.stop()
                    }
                }
                client.onReady = {
                    waitsAtReady = client.writableWaits
                    next()
                }
                client.start()
                EventLoop.current.schedule(afterMilliseconds: 10_000) {
                    result.state.withLock { $0.failure = "timed out after \(replies) replies" }
                    EventLoop.current.stop()
                }
            }
        }
        thread.start()
        let deadline = Date().addingTimeInterval(12)
        while !thread.isFinished && Date() < deadline { usleep(20_000) }
        let (replies, waits, failure) = result.state.withLock { $0 }
        #expect(failure == nil)
        #expect(replies == 50)
        #expect(waits == 0, "EPOLLOUT armed \(waits) times for 50 commands on a connected client")
    }
}

private final class Outcome: Sendable {
    let state = Mutex<(replies: Int, waitsAfterReady: Int, failure: String?)>((0, -1, nil))
}
