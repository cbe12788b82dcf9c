import HeraldCore
import HeraldLoop

/// Commands to a Redis Cluster, on the worker's loop: one `RedisClient` per master, each
/// command sent to the master of its key's slot.
///
/// - The slot map comes from `CLUSTER SHARDS` (or `CLUSTER SLOTS` on a Redis before 7),
///   asked of the known nodes and then the seeds in turn, with a backoff (100 ms doubling
///   to 2 s) while none answers. Until there is a map, commands wait for it while the
///   first round of candidates is asked (within the command timeout), and fail at once
///   with `.unavailable` after a round where none answered.
/// - `MOVED` updates the slot and resends to the new owner; `ASK` resends once to the
///   node named, after `ASKING`; at most `maximumRedirects` hops. A redirect, a
///   `CLUSTERDOWN`/`TRYAGAIN` reply, a lost connection and a master not ready (checked
///   every `checkInterval`) all ask for the map again, so that a promoted replica takes
///   over within one check after the cluster announces it.
/// - A command without a key (SCRIPT LOAD) goes to every master; other keyless ones
///   (CLIENT LIST) to one that is ready. A command that failed on a lost connection is
///   not resent (it may have run): the caller gets the error.
@LoopActor
public final class RedisClusterClient: RedisCommandConnection {
    public let endpoint: RedisEndpoint
    public let name: String
    public let commandTimeout: Int
    public private(set) var map: RedisSlotMap?
    private var clients: [RedisNode: RedisClient] = [:]
    public private(set) var lastError = "the cluster's slot map is not known yet"
    public var onReady: (@LoopActor () -> Void)?
    public var onPublishDrained: (@LoopActor () -> Void)?
    /// Runs after each new slot map (the sharded subscriber re-homes its channels).
    var onMapChanged: (@LoopActor () -> Void)?
    public var publishHighWater = 1 << 20 {
        didSet { for client in clients.values { client.publishHighWater = publishHighWater } }
    }
    private var stopped = false
    private var started = false
    private var refreshing = false
    private var refreshWanted = false
    private var candidateIndex = 0
    private var backoff = 100
    private var checkTimer: LoopTimer?
    /// Commands sent before the first map, while its first round of questions runs.
    private let heldForMap = RedisHeldCommands()
    /// A whole round of candidates was asked without a map (commands then fail at once).
    private var firstRoundFailed = false
    /// Slot-map refreshes done (for logs and tests).
    public private(set) var refreshes = 0

    static let maximumRedirects = 5
    static let checkInterval = 250

    public init(endpoint: RedisEndpoint, name: String, commandTimeout: Int = 2_000) {
        self.endpoint = endpoint
        self.name = name
        self.commandTimeout = commandTimeout
    }

    public var isReady: Bool { map != nil && clients.values.contains { $0.isReady } }
    public var acceptsCommands: Bool { map == nil ? isAwaitingFirstMap : clients.values.contains { $0.acceptsCommands } }
    /// No map yet, and its first round of questions is still on: what needs one waits.
    var isAwaitingFirstMap: Bool { map == nil && started && !stopped && !firstRoundFailed }
    public var isPublishCongested: Bool { clients.values.contains { $0.isPublishCongested } }

    public func start() {
        guard !started else { return }
        started = true
        refresh()
        scheduleCheck()
    }

    public func stop() {
        guard !stopped else { return }
        stopped = true
        checkTimer?.cancel()
        heldForMap.fail(.unavailable("the client was stopped"))
        for client in clients.values { client.stop() }
        clients.removeAll()
    }

    public func flushWrites() {
        for client in clients.values { client.flushWrites() }
    }

    /// The master serving `key` now, if the map names one.
    public func master(forKey key: [UInt8]) -> RedisNode? { map?.master(forSlot: RedisSlots.slot(of: key)) }

    /// The masters' connections by node (for the sharded subscriber and status).
    var masters: [RedisNode] { map?.masters ?? [] }

    // MARK: Commands

    public func send(_ arguments: [[UInt8]], completion: @escaping @LoopActor (Result<RedisReply, RedisError>) -> Void) {
        guard let map else {
            guard isAwaitingFirstMap else { return completion(.failure(.unavailable(lastError))) }
            return heldForMap.hold(arguments, timeout: commandTimeout, completion: completion)
        }
        switch Self.route(arguments) {
        case .key(let index):
            guard let node = map.master(forSlot: RedisSlots.slot(of: arguments[index])) else {
                wantRefresh()
                return completion(.failure(.unavailable("no master serves the slot of this key")))
            }
            dispatch(arguments, to: node, asking: false, hops: 0, completion: completion)
        case .everyMaster:
            var answered = false
            for node in map.masters {
                dispatch(arguments, to: node, asking: false, hops: 0) { result in
                    guard !answered else { return }
                    answered = true
                    completion(result)
                }
            }
            if map.masters.isEmpty { completion(.failure(.unavailable(lastError))) }
        case .anyMaster:
            guard let node = map.masters.first(where: { clients[$0]?.isReady == true }) ?? map.masters.first else {
                return completion(.failure(.unavailable(lastError)))
            }
            dispatch(arguments, to: node, asking: false, hops: 0, completion: completion)
        }
    }

    /// An SPUBLISH (or PUBLISH) to the master of the channel's slot; false when that
    /// master has no connection now.
    public func publish(_ arguments: [[UInt8]], bytes: Int) -> Bool {
        guard let map, arguments.count >= 2, let node = map.master(forSlot: RedisSlots.slot(of: arguments[1])),
              let client = clients[node] else { return false }
        return client.publish(arguments, bytes: bytes)
    }

    public func acceptsPublish(channel: [UInt8]) -> Bool {
        guard let node = map?.master(forSlot: RedisSlots.slot(of: channel)) else { return false }
        return clients[node]?.isReady == true
    }

    private func dispatch(_ arguments: [[UInt8]], to node: RedisNode, asking: Bool, hops: Int,
                          completion: @escaping @LoopActor (Result<RedisReply, RedisError>) -> Void) {
        let client = connection(to: node)
        if asking { client.send([Array("ASKING".utf8)]) { _ in } }
        client.send(arguments) { [weak self] result in
            guard let self, !self.stopped else { return completion(result) }
            switch result {
            case .success(.error(let message)):
                if let redirect = RedisRedirect.parse(message), hops < Self.maximumRedirects {
                    if redirect.kind == .moved {
                        self.map?.assign(redirect.slot...redirect.slot, to: redirect.node)
                        self.wantRefresh()
                    }
                    return self.dispatch(arguments, to: redirect.node, asking: redirect.kind == .ask, hops: hops + 1,
                                         completion: completion)
                }
                if message.hasPrefix("CLUSTERDOWN") || message.hasPrefix("TRYAGAIN") || message.hasPrefix("MOVED") {
                    self.wantRefresh()
                }
                completion(result)
            case .failure:
                self.wantRefresh()
                completion(result)
            case .success:
                completion(result)
            }
        }
    }

    enum Route: Equatable { case key(Int), everyMaster, anyMaster }

    /// Where a command goes: the argument that is its key, or no key.
    nonisolated static func route(_ arguments: [[UInt8]]) -> Route {
        guard let verb = arguments.first else { return .anyMaster }
        let name = String(decoding: verb, as: UTF8.self).uppercased()
        switch name {
        case "EVAL", "EVALSHA":
            guard arguments.count > 3, let keys = Int(String(decoding: arguments[2], as: UTF8.self)), keys > 0 else {
                return .anyMaster
            }
            return .key(3)
        case "SCRIPT": return .everyMaster
        case "CLIENT", "PING", "INFO", "CLUSTER", "ASKING": return .anyMaster
        default: return arguments.count > 1 ? .key(1) : .anyMaster
        }
    }

    // MARK: Connections

    private func connection(to node: RedisNode) -> RedisClient {
        if let client = clients[node] { return client }
        let client = RedisClient(endpoint: endpoint.node(node), name: "\(name)@\(node)", commandTimeout: commandTimeout)
        client.nodeRole = "master"  // (the slot map's owners)
        client.publishHighWater = publishHighWater
        client.onReady = { [weak self] in self?.onReady?() }
        client.onPublishDrained = { [weak self] in
            guard let self, !self.isPublishCongested else { return }
            self.onPublishDrained?()
        }
        clients[node] = client
        client.start()
        return client
    }

    /// Opens connections to the map's masters and closes those to nodes that are no
    /// longer masters.
    private func adoptConnections() {
        guard let map else { return }
        let wanted = Set(map.masters)
        for node in map.masters { _ = connection(to: node) }
        for (node, client) in clients where !wanted.contains(node) {
            Self.retire(client)
            clients[node] = nil
        }
    }

    /// Stops a client on the next loop turn: this may run inside one of its hiredis
    /// callbacks, even while hiredis frees its context (a failed command's callback),
    /// where freeing it again would be a double free.
    static func retire(_ client: RedisClient) {
        EventLoop.current.schedule(afterMilliseconds: 0) { client.stop() }
    }

    // MARK: The slot map

    /// Asks for the map again soon (coalesced: one discovery at a time).
    func wantRefresh() {
        if refreshing { refreshWanted = true } else { refresh() }
    }

    private func scheduleCheck() {
        checkTimer = EventLoop.current.schedule(afterMilliseconds: Self.checkInterval) { [weak self] in
            guard let self, !self.stopped else { return }
            if let map = self.map, map.masters.contains(where: { self.clients[$0]?.isReady != true }) || map.coveredSlots < RedisSlots.count {
                self.wantRefresh()
            }
            self.scheduleCheck()
        }
    }

    private var candidates: [RedisNode] {
        var nodes: [RedisNode] = []
        for node in (map?.knownNodes ?? []) + (seeds) where !nodes.contains(node) { nodes.append(node) }
        return nodes
    }

    private var seeds: [RedisNode] {
        if case .cluster(let seeds) = endpoint.address { return seeds }
        return []
    }

    private func refresh() {
        guard !stopped, !refreshing else { return }
        let nodes = candidates
        guard !nodes.isEmpty else { return }
        refreshing = true
        refreshWanted = false
        let node = nodes[candidateIndex % nodes.count]
        // A ready master's connection, else a connection for this one question.
        let ready = clients.first { $0.value.isReady }?.value
        let asked: RedisClient
        let temporary: Bool
        if let ready, candidateIndex % 2 == 0 {
            asked = ready
            temporary = false
        } else {
            asked = RedisClient(endpoint: endpoint.node(node), name: "\(name).discovery", commandTimeout: min(commandTimeout, 1_000))
            asked.start()
            temporary = true
        }
        ask(asked, shards: true) { [weak self] map in
            if temporary { Self.retire(asked) }
            guard let self, !self.stopped else { return }
            self.refreshing = false
            if let map, map.coveredSlots > 0 {
                self.backoff = 100
                self.install(map)
                if self.refreshWanted { self.refresh() }
            } else {
                self.candidateIndex += 1
                let delay = self.candidateIndex % max(1, nodes.count) == 0 ? self.backoff : 0
                if delay > 0 { self.backoff = min(self.backoff * 2, 2_000) }
                if delay > 0 && self.map == nil {
                    self.firstRoundFailed = true
                    self.heldForMap.fail(.unavailable(self.lastError))
                }
                EventLoop.current.schedule(afterMilliseconds: delay) { [weak self] in self?.refresh() }
            }
        }
    }

    /// CLUSTER SHARDS, or CLUSTER SLOTS where SHARDS is unknown.
    private func ask(_ client: RedisClient, shards: Bool, done: @escaping @LoopActor (RedisSlotMap?) -> Void) {
        let verb = shards ? "SHARDS" : "SLOTS"
        client.send([Array("CLUSTER".utf8), Array(verb.utf8)]) { [weak self] result in
            switch result {
            case .success(.error(let message)):
                if shards && message.lowercased().contains("unknown subcommand") {
                    return self?.ask(client, shards: false, done: done) ?? done(nil)
                }
                self?.lastError = "CLUSTER \(verb): \(message)"
                done(nil)
            case .success(let reply):
                done(shards ? RedisSlotMap.fromShards(reply) : RedisSlotMap.fromSlots(reply))
            case .failure(let error):
                self?.lastError = "\(error)"
                done(nil)
            }
        }
    }

    private func install(_ new: RedisSlotMap) {
        refreshes += 1
        let old = map
        // (Even an unchanged map re-homes: a refused subscription is sent again.)
        guard old != new else {
            onMapChanged?()
            return
        }
        map = new
        if old?.masters != new.masters {
            log.info("redis.cluster.map", ["client": name, "masters": new.masters.map(\.description).joined(separator: ","),
                                           "slots": String(new.coveredSlots)])
        }
        adoptConnections()
        onMapChanged?()
        heldForMap.release { arguments, completion in send(arguments, completion: completion) }
    }
}
