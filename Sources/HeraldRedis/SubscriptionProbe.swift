import HeraldCore
import HeraldLoop

/// Notices a subscriber connection that is open but hears nothing (left on a demoted or
/// unrelated node after a failover, or a link that silently stopped): every second the
/// worker publishes on a channel of its own (`<prefix>probe:<worker id>`) through its
/// command connection every 500 ms, which its subscriber connection is subscribed to.
/// When no probe has come back for 2 s while both connections were up, and nothing else
/// arrived on the subscriber meanwhile either (a subscriber working through a backlog is
/// live: its probe is queued behind the backlog), the subscriber is reconnected (it
/// resubscribes every wanted channel by itself): within about 3 s of the silence starting.
@LoopActor
final class SubscriptionProbe {
    static let interval = 500
    static let silenceLimit: UInt64 = 2_000_000_000

    let channel: String
    let channelBytes: [UInt8]
    private unowned let publisher: RedisClient
    private unowned let subscriber: RedisClient
    private let command: [[UInt8]]
    private var timer: LoopTimer?
    /// When the oldest probe not yet heard back was sent (0: none outstanding).
    private var unansweredSince: UInt64 = 0
    /// Reconnects it caused (for tests and logs).
    private(set) var silentReconnects = 0

    init(channel: String, publisher: RedisClient, subscriber: RedisClient) {
        self.channel = channel
        self.channelBytes = Array(channel.utf8)
        self.publisher = publisher
        self.subscriber = subscriber
        command = [Array("PUBLISH".utf8), Array(channel.utf8), Array("probe".utf8)]
    }

    func start() {
        _ = subscriber.subscribe(channel)
        schedule()
    }

    func stop() {
        timer?.cancel()
        timer = nil
    }

    func isProbe(_ bytes: UnsafeRawBufferPointer) -> Bool {
        channelBytes.withBytes { $0.hasSameBytes(as: bytes) }
    }

    func heard() { unansweredSince = 0 }

    private func schedule() {
        timer = EventLoop.current.schedule(afterMilliseconds: Self.interval) { [weak self] in
            guard let self else { return }
            self.tick()
            self.schedule()
        }
    }

    private func tick() {
        // Only a subscription that is up and a publisher that is up can be judged.
        guard subscriber.isReady, publisher.isReady else {
            unansweredSince = 0
            return
        }
        let now = Clock.monotonicNanos()
        if unansweredSince != 0, now &- unansweredSince > Self.silenceLimit,
           now &- subscriber.lastReplyNanos > Self.silenceLimit / 2 {
            silentReconnects += 1
            log.warn("redis.subscriber.silent", ["channel": channel, "silentMs": String((now &- unansweredSince) / 1_000_000),
                                                 "node": subscriber.connectedNode?.description ?? "",
                                                 "action": "reconnecting the subscriber"])
            unansweredSince = 0
            subscriber.reconnect(reason: "no probe heard back")
            return
        }
        guard publisher.sendAndForget(command) else { return }
        if unansweredSince == 0 { unansweredSince = now }
    }
}
