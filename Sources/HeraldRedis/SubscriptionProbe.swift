import HeraldCore
import HeraldLoop

/// Notices a subscriber connection that is open but hears nothing (left on a demoted or
/// unrelated node after a failover, or a link that silently stopped): the worker publishes on a channel of its own (`<prefix>probe:<worker id>`) through its
/// command connection every 500 ms, which its subscriber connection is subscribed to.
/// When no probe has come back for 2 s after Redis took it (answered its PUBLISH) while
/// both connections were up, and nothing else
/// arrived on the subscriber meanwhile either (a subscriber working through a backlog is
/// live: its probe is queued behind the backlog), the subscriber is reconnected (it
/// resubscribes every wanted channel by itself): within about 3 s of the silence starting.
///
/// For `redis://`, `unix://` and `redis-sentinel://` (one command connection, one
/// `RedisSubscriber`). Not on a cluster: there a channel lives on one shard of several,
/// and a subscription lost to a failover or resharding is re-homed by the slot map
/// (`RedisShardedSubscriber`) rather than noticed by a probe.
@LoopActor
final class SubscriptionProbe {
    static let interval = 500
    static let silenceLimit: UInt64 = 2_000_000_000

    let channel: String
    let channelBytes: [UInt8]
    private unowned let publisher: RedisClient
    private unowned let subscriber: RedisSubscriber
    private let command: [[UInt8]]
    private var timer: LoopTimer?
    /// When Redis answered the oldest probe not yet heard back (0: none outstanding).
    private var unansweredSince: UInt64 = 0
    /// Reconnects it caused (for tests and logs).
    private(set) var silentReconnects = 0

    init(channel: String, publisher: RedisClient, subscriber: RedisSubscriber) {
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

    private func looksSilent(_ now: UInt64) -> Bool {
        unansweredSince != 0 && now &- unansweredSince > Self.silenceLimit
            && now &- subscriber.lastReplyNanos > Self.silenceLimit / 2
    }

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
        if looksSilent(Clock.monotonicNanos()) {
            // A loop busy for seconds (a say to 19,000 members on a starved host) runs its
            // timers before it has read what came meanwhile: read the subscriber first, or
            // a probe waiting in its socket is taken for silence and the reconnect loses
            // what is published meanwhile (seen at a million connections: 4 workers).
            subscriber.handleEvents(IOEvents.readable)
        }
        let now = Clock.monotonicNanos()
        if looksSilent(now) {
            silentReconnects += 1
            log.warn("redis.subscriber.silent", ["channel": channel, "silentMs": String((now &- unansweredSince) / 1_000_000),
                                                 "node": subscriber.connectedNode?.description ?? "",
                                                 "action": "reconnecting the subscriber"])
            unansweredSince = 0
            subscriber.reconnect(reason: "no probe heard back")
            return
        }
        // The silence is counted from when Redis answered a probe's PUBLISH, not from
        // when it was sent: a Redis or a worker loop starved of CPU (a host busy with a
        // million connections) answers late and delivers late alike, which is not a dead
        // subscription; Redis having taken the PUBLISH while the subscriber hears nothing is.
        publisher.send(command) { [weak self] result in
            guard let self, case .success = result, self.unansweredSince == 0 else { return }
            self.unansweredSince = Clock.monotonicNanos()
        }
    }
}
