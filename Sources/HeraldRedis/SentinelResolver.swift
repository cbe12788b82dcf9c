import HeraldCore
import HeraldLoop

/// Where the master of a `redis-sentinel://` endpoint is, for every Redis client of this
/// process (one resolver per sentinel endpoint, shared by the bus, subscriber and cache).
///
/// - `resolve` answers the master the sentinels last named; when there is none (first
///   connect, or a client lost its connection to it, or found it is not a master), it asks
///   the sentinels with `SENTINEL get-master-addr-by-name`, each in turn, over hiredis
///   async on the loop; after a round where none answered it waits (100 ms doubling to
///   2 s) and asks again. The callers wait meanwhile (their own commands fail at once
///   with `redis is unavailable (…)`).
/// - A connection to one sentinel is subscribed to `+switch-master`: when the master
///   changes, every client not on the new one reconnects at once. When that sentinel is
///   lost the watch moves to the next one.
/// - Sentinels are asked without a password; one that answers NOAUTH is asked again with
///   the endpoint's (the master's) password, and so are all of them from then on.
/// - Every change of master is one log line, `redis.master.switched`.
@LoopActor
final class SentinelResolver {
    let sentinels: [RedisNode]
    let masterName: String
    let password: String?
    /// The master the sentinels last named; nil when it must be asked again.
    private(set) var master: RedisNode?
    /// The last master known (for the switch log line).
    private var previous: RedisNode?
    private var waiting: [@LoopActor (RedisNode) -> Void] = []
    private var asking = false
    private var next = 0
    private var triedThisRound = 0
    private var backoff = 100
    private var sentinelsNeedAuth = false
    private var query: RedisClient?
    private var watcher: RedisSubscriber?
    private var watcherIndex = 0
    private var watchTimer: LoopTimer?
    private var clients: [WeakClient] = []
    private var failedRounds = 0

    private struct WeakClient { weak var client: (any SentinelFollower)? }

    static let queryTimeout = 1_000
    private static var shared: [String: SentinelResolver] = [:]

    /// The process's resolver for `endpoint` (which must be a sentinel endpoint).
    static func resolver(for endpoint: RedisEndpoint) -> SentinelResolver? {
        guard case .sentinel(let nodes, let name) = endpoint.address else { return nil }
        let key = endpoint.description
        if let found = shared[key] { return found }
        let made = SentinelResolver(sentinels: nodes, masterName: name, password: endpoint.password)
        shared[key] = made
        return made
    }

    init(sentinels: [RedisNode], masterName: String, password: String?) {
        self.sentinels = sentinels
        self.masterName = masterName
        self.password = password
    }

    /// A connection that follows this master (reconnected when the master switches).
    func register(_ client: any SentinelFollower) {
        clients.removeAll { $0.client == nil }
        if !clients.contains(where: { $0.client === client }) { clients.append(WeakClient(client: client)) }
        startWatching()
    }

    /// Calls `done` with the master (at once when known, else once the sentinels said).
    func resolve(_ done: @escaping @LoopActor (RedisNode) -> Void) {
        if let master { return done(master) }
        waiting.append(done)
        ask()
    }

    /// A client could not use `node` (connection lost or refused, or not a master):
    /// the next `resolve` asks the sentinels again.
    func forget(_ node: RedisNode) {
        if master == node { master = nil }
    }

    // MARK: Asking

    private func ask() {
        guard !asking else { return }
        asking = true
        triedThisRound = 0
        askNext()
    }

    private func askNext() {
        if triedThisRound >= sentinels.count {
            failedRounds += 1
            if failedRounds == 1 || failedRounds % 30 == 0 {
                log.warn("redis.sentinel.unanswered", ["master": masterName, "sentinels": String(sentinels.count),
                                                       "retryMs": String(backoff)])
            }
            triedThisRound = 0
            let wait = backoff
            backoff = min(backoff * 2, 2_000)
            EventLoop.current.schedule(afterMilliseconds: wait) { [weak self] in self?.askNext() }
            return
        }
        let sentinel = sentinels[next % sentinels.count]
        let client = RedisClient(endpoint: RedisEndpoint(address: .tcp(host: sentinel.host, port: sentinel.port),
                                                         password: sentinelsNeedAuth ? password : nil),
                                 name: "sentinel", commandTimeout: Self.queryTimeout)
        client.quiet = true
        query = client
        client.start()
        client.send([Array("SENTINEL".utf8), Array("get-master-addr-by-name".utf8), Array(masterName.utf8)]) { [weak self] result in
            guard let self, self.query === client else { return }
            self.query = nil
            EventLoop.current.schedule(afterMilliseconds: 0) { client.stop() }
            self.answered(result, by: sentinel, client: client)
        }
    }

    private func answered(_ result: Result<RedisReply, RedisError>, by sentinel: RedisNode, client: RedisClient) {
        if case .success(.array(let items)) = result, items.count == 2,
           case .string(let host) = items[0], case .string(let portText) = items[1],
           let port = Int(String(decoding: portText, as: UTF8.self)) {
            asking = false
            failedRounds = 0
            backoff = 100
            // (A +switch-master heard meanwhile is newer than this answer.)
            if master == nil { setMaster(RedisNode(host: String(decoding: host, as: UTF8.self), port: port), how: "asked \(sentinel)") }
            let callers = waiting
            waiting.removeAll()
            for caller in callers { caller(master!) }
            return
        }
        let why: String
        switch result {
        case .success(.null): why = "does not know the master '\(masterName)'"
        case .success(.error(let message)): why = message
        case .success: why = "unexpected reply"
        case .failure(let error): why = "\(error)"
        }
        let needsAuth = why.contains("NOAUTH") || client.lastError.contains("NOAUTH")
        if needsAuth && !sentinelsNeedAuth && password != nil {
            sentinelsNeedAuth = true  // the same sentinel again, with the password
        } else {
            if failedRounds == 0 {
                log.info("redis.sentinel.failed", ["sentinel": sentinel.description, "master": masterName, "error": why])
            }
            next += 1
            triedThisRound += 1
        }
        askNext()
    }

    private func setMaster(_ node: RedisNode, how: String) {
        master = node
        if let previous, previous != node {
            log.warn("redis.master.switched", ["master": masterName, "old": previous.description, "new": node.description,
                                               "how": how])
        } else if previous == nil {
            log.info("redis.master.found", ["master": masterName, "node": node.description, "how": how])
        }
        previous = node
    }

    // MARK: +switch-master

    private func startWatching() {
        guard watcher == nil else { return }
        let sentinel = sentinels[watcherIndex % sentinels.count]
        let client = RedisSubscriber(endpoint: RedisEndpoint(address: .tcp(host: sentinel.host, port: sentinel.port),
                                                             password: sentinelsNeedAuth ? password : nil),
                                     name: "sentinel-watch", sharded: false, commandTimeout: Self.queryTimeout)
        client.quiet = true
        client.onMessage = { [weak self] _, payload in
            self?.switchAnnounced(String(decoding: payload, as: UTF8.self))
        }
        watcher = client
        client.start()
        _ = client.subscribe("+switch-master")
        // A watch on a sentinel that is gone moves to the next one.
        watchTimer?.cancel()
        watchTimer = EventLoop.current.schedule(afterMilliseconds: 1_000) { [weak self] in self?.checkWatcher() }
    }

    private func checkWatcher() {
        guard let watcher else { return }
        if watcher.phase == .waiting {
            watcher.stop()
            self.watcher = nil
            watcherIndex += 1
            startWatching()
            return
        }
        watchTimer = EventLoop.current.schedule(afterMilliseconds: 1_000) { [weak self] in self?.checkWatcher() }
    }

    /// `<master name> <old ip> <old port> <new ip> <new port>`
    private func switchAnnounced(_ text: String) {
        let words = text.split(separator: " ")
        guard words.count >= 5, words[0] == masterName, let port = Int(words[4]) else { return }
        let node = RedisNode(host: String(words[3]), port: port)
        setMaster(node, how: "+switch-master")
        let callers = waiting
        waiting.removeAll()
        for caller in callers { caller(node) }
        for entry in clients {
            guard let client = entry.client, client.connectedNode != node else { continue }
            client.reconnect(reason: "the sentinels switched the master to \(node)")
        }
    }
}

/// A connection that follows the master a `SentinelResolver` names: the command
/// connection (`RedisClient`) and the subscriber (`RedisSubscriber`).
@LoopActor
protocol SentinelFollower: AnyObject {
    /// The master it is connected to now (nil while not connected).
    var connectedNode: RedisNode? { get }
    /// Drops the connection and connects again to the master named now.
    func reconnect(reason: String)
    /// The endpoint it connects to, whether it is waiting for the sentinels' answer, and
    /// how it connects to a node (nil: the endpoint's own address).
    var endpoint: RedisEndpoint { get }
    var resolving: Bool { get set }
    func connect(to node: RedisNode?)
}

extension SentinelFollower {
    /// Connects: to the endpoint's address, or, for a Sentinel endpoint, to the master the
    /// sentinels name now (at once when already known; one question at a time).
    func connectToCurrentMaster() {
        guard let resolver = SentinelResolver.resolver(for: endpoint) else { return connect(to: nil) }
        guard !resolving else { return }
        resolving = true
        resolver.register(self)
        resolver.resolve { [weak self] node in
            guard let self, self.resolving else { return }
            self.resolving = false
            self.connect(to: node)
        }
    }
}

extension RedisClient: SentinelFollower {}
extension RedisSubscriber: SentinelFollower {}
