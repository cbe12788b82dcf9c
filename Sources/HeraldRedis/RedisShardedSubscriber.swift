import HeraldCore
import HeraldLoop

/// Sharded pub/sub over a Redis Cluster: one `RedisSubscriber` (SSUBSCRIBE) per master,
/// each channel subscribed on the master that owns its slot in the router's map. A new
/// map (a failover, a redirect) moves each channel whose owner changed; a connection
/// left without channels on a node that is no longer a master is closed.
@LoopActor
public final class RedisShardedSubscriber: RedisSubscriptions {
    let router: RedisClusterClient
    let commandTimeout: Int
    public var onMessage: (@LoopActor (_ channel: UnsafeRawBufferPointer, _ payload: UnsafeRawBufferPointer) -> Void)?
    public var onMessagesEnd: (@LoopActor () -> Void)?
    private var shards: [RedisNode: RedisSubscriber] = [:]
    /// Each wanted channel and the node it is subscribed on (nil while no map names one).
    private var home: [String: RedisNode?] = [:]
    private var stopped = false
    /// Subscriptions asked for before the first slot map, by channel (see `subscribe`).
    private var awaitingMap: [String: [SubscriptionWaiter]] = [:]

    init(router: RedisClusterClient, commandTimeout: Int) {
        self.router = router
        self.commandTimeout = commandTimeout
    }

    public func start() {
        let previous = router.onMapChanged
        router.onMapChanged = { [weak self] in
            previous?()
            self?.rehome()
        }
        router.start()
        rehome()
    }

    public func stop() {
        guard !stopped else { return }
        stopped = true
        for waiter in awaitingMap.values.joined() { waiter.finish(.unavailable("the subscriber was stopped")) }
        awaitingMap.removeAll()
        for shard in shards.values { shard.stop() }
        shards.removeAll()
    }

    /// `done` once every shard has delivered what Redis had sent it when asked
    /// (`RedisSubscriber.afterMessagesInFlight`).
    public func afterMessagesInFlight(_ done: @escaping @LoopActor () -> Void) {
        var left = shards.count
        guard left > 0 else { return done() }
        for shard in shards.values {
            shard.afterMessagesInFlight {
                left -= 1
                if left == 0 { done() }
            }
        }
    }

    public var wantedChannels: [String] { Array(home.keys) }

    public func subscribe(_ channel: String) -> SubscriptionWaiter? {
        if let placed = home[channel], let node = placed, let shard = shards[node] { return shard.subscribe(channel) }
        guard let node = router.master(forKey: Array(channel.utf8)) else {
            home[channel] = .some(nil)
            let waiter = SubscriptionWaiter()
            guard router.isAwaitingFirstMap else {
                waiter.finish(.unavailable(router.lastError))
                return waiter
            }
            // The first map is being asked for: the subscription is made once it names the
            // channel's master (`rehome`), or fails at the command timeout.
            let timeout = commandTimeout
            waiter.timer = EventLoop.current.schedule(afterMilliseconds: timeout) { [weak self, waiter] in
                waiter.finish(.timeout(timeout))
                self?.awaitingMap[channel]?.removeAll { $0 === waiter }
            }
            awaitingMap[channel, default: []].append(waiter)
            return waiter
        }
        home[channel] = node
        return shard(node).subscribe(channel)
    }

    public func unsubscribe(_ channel: String) {
        guard let placed = home.removeValue(forKey: channel) else { return }
        if let node = placed { shards[node]?.unsubscribe(channel) }
    }

    private func shard(_ node: RedisNode) -> RedisSubscriber {
        if let shard = shards[node] { return shard }
        let shard = RedisSubscriber(endpoint: router.endpoint.node(node), name: "subscriber@\(node)", sharded: true,
                                    commandTimeout: commandTimeout)
        shard.onMessage = { [unowned self] channel, payload in onMessage?(channel, payload) }
        shard.onMessagesEnd = { [unowned self] in onMessagesEnd?() }
        shard.onRedirect = { [weak self] _ in self?.router.wantRefresh() }
        shards[node] = shard
        shard.start()
        return shard
    }

    /// Puts every wanted channel on its slot's master now.
    private func rehome() {
        guard !stopped else { return }
        for (channel, placed) in home {
            let owner = router.master(forKey: Array(channel.utf8))
            if placed == owner {
                // Same node: make sure the wish is there (a refused SSUBSCRIBE left it unsent).
                if let owner { _ = shard(owner).subscribe(channel) }
                continue
            }
            if let old = placed { shards[old]?.unsubscribe(channel) }
            home[channel] = .some(owner)
            guard let owner else { continue }
            let made = shard(owner).subscribe(channel)
            for waiter in awaitingMap.removeValue(forKey: channel) ?? [] {
                if let made { made.forward(to: waiter) } else { waiter.finish(nil) }
            }
        }
        let masters = Set(router.masters)
        for (node, shard) in shards where !masters.contains(node) && shard.wantedChannels.isEmpty {
            shard.stop()
            shards[node] = nil
        }
    }
}
