import HeraldCore
import HeraldLoop

/// Rooms across workers and hosts through Redis.
///
/// - One pub/sub channel per room (`<prefix>room:<room>`). A worker subscribes when its
///   first member joins the room and unsubscribes when its last one leaves, so it gets
///   a room's traffic only while it has members there. A `say` is published once; the
///   message carries the origin worker's id, and the origin skips it (it delivered to
///   its own members already).
/// - Membership lives in one hash per room, member id → "<joinedAt> <worker id>". Each
///   worker refreshes a heartbeat key with a 10 s expiry every 2 s, and its entry in the
///   registry (`alive`, scored by that expiry); members of a worker whose key is gone are
///   left out of `roomView` at once and removed by the next reap (every worker reaps
///   every 6 s and before each `stats`; a reap reads only the registry's expired entries,
///   so its cost does not grow with the number of workers).
/// - After a reconnect (or when its heartbeat key had vanished) a worker clears what
///   Redis holds of it and registers its current members again, with the joins and
///   leaves still in flight applied on top (`inFlight`); the subscriber client
///   resubscribes its rooms' channels by itself.
@LoopActor
public final class RedisBus: RoomBus {
    public let workerID: String
    public let endpoint: RedisEndpoint
    let commands: any RedisCommandConnection
    let subscriber: any RedisSubscriptions
    /// Notices a subscription that hears nothing (see SubscriptionProbe; nil on a cluster).
    let probe: SubscriptionProbe?
    private let prefix: [UInt8]
    private let workerIDBytes: [UInt8]
    /// What starts every message this worker publishes (see `BusFrame`).
    private let frameHeader: [UInt8]
    /// The message being published. (The client keeps each one until Redis answers it, to
    /// send it again after a broken connection, so the next encode writes a new buffer.)
    private var message: [UInt8] = []
    private let workerKey: [UInt8]
    private let workerRoomsKey: [UInt8]
    private let workerMembersPrefix: [UInt8]
    private let aliveKey: [UInt8]
    private let roomsKey: [UInt8]
    private let channelPrefix: [UInt8]

    private var deliver: (@LoopActor (String, UnsafeRawBufferPointer, BusMessage) -> Void)?
    /// The sequence number of the last message published (BusFrame).
    public private(set) var lastPublishedSequence: UInt64 = 0
    public var originID: [UInt8] { workerIDBytes }
    /// The worker's record of its members (the bus keeps no copy).
    private var membership = Membership()
    private var connectionCount = 0
    private var heartbeatTimer: LoopTimer?
    private var countTimer: LoopTimer?
    private var ticks = 0
    private var stopped = false
    // The last channel a message came in on, to skip a lookup per message.
    private var lastChannel: [UInt8] = []
    private var lastRoom = ""
    /// Messages not published because Redis was unavailable.
    public private(set) var droppedPublishes = 0

    static let heartbeatInterval = 2_000
    static let heartbeatTTL = 10_000
    static let reapEveryTicks = 3

    private let joinScript = RedisScript(Lua.join)
    private let leaveScript = RedisScript(Lua.leave)
    private let membersScript = RedisScript(Lua.members)
    private let heartbeatScript = RedisScript(Lua.heartbeat)
    private let reapScript = RedisScript(Lua.reap)
    private var scripts: [RedisScript] { [joinScript, leaveScript, membersScript, heartbeatScript, reapScript] }

    public init(endpoint: RedisEndpoint, workerID: String? = nil, commandTimeout: Int = 2_000,
                publishHighWater: Int = 1 << 20) {
        var random = FastRandom()
        self.workerID = workerID ?? ConnectionID(using: &random).string
        self.endpoint = endpoint
        self.prefix = Array(endpoint.busKeyPrefix.utf8)
        self.workerIDBytes = Array(self.workerID.utf8)
        self.frameHeader = BusFrame.header(origin: self.workerIDBytes)
        self.workerKey = prefix + Array("w:\(self.workerID)".utf8)
        self.workerRoomsKey = prefix + Array("w:\(self.workerID):rooms".utf8)
        self.workerMembersPrefix = prefix + Array("w:\(self.workerID):r:".utf8)
        self.aliveKey = prefix + Array("alive".utf8)
        self.roomsKey = prefix + Array("rooms".utf8)
        self.channelPrefix = Array((endpoint.prefix + "room:").utf8)
        // (On a cluster: SPUBLISH and SSUBSCRIBE, on the shard of each room's channel.)
        (commands, subscriber) = RedisConnections.bus(endpoint, commandTimeout: commandTimeout)
        commands.publishHighWater = publishHighWater
        if endpoint.isCluster { publishVerb = Array("SPUBLISH".utf8) }
        if let publisher = commands as? RedisClient, let listener = subscriber as? RedisSubscriber {
            probe = SubscriptionProbe(channel: endpoint.prefix + "probe:" + self.workerID, publisher: publisher, subscriber: listener)
        } else {
            probe = nil
        }
    }

    public var isLocalOnly: Bool { false }

    public func start(membership: Membership, deliver: @escaping @LoopActor (String, UnsafeRawBufferPointer, BusMessage) -> Void,
                      deliveredAll: @escaping @LoopActor () -> Void, drained: @escaping @LoopActor () -> Void) {
        self.membership = membership
        self.deliver = deliver
        self.drained = drained
        commands.onPublishDrained = { [unowned self] in if !self.subscribersBacklogged { self.drained?() } }
        commands.onReady = { [unowned self] in
            for script in scripts { script.load(on: commands) }
            resync()
        }
        subscriber.onMessage = { [unowned self] channel, payload in received(channel: channel, payload: payload) }
        subscriber.onMessagesEnd = deliveredAll
        commands.start()
        subscriber.start()
        probe?.start()
        scheduleHeartbeat()
    }

    public func stop() {
        guard !stopped else { return }
        stopped = true
        heartbeatTimer?.cancel()
        countTimer?.cancel()
        if commands.isReady {
            // Leave the cluster now rather than when the heartbeat expires.
            reap(clearing: workerIDBytes, leave: true)
        }
        probe?.stop()
        commands.stop()
        subscriber.stop()
    }

    // MARK: Membership

    public func join(room: String, member: RoomMember) async throws {
        guard commands.acceptsCommands else { throw RedisError.unavailable(commands.lastError) }
        let waiter = subscriber.subscribe(channelName(room))
        let value = Array("\(member.joinedAt) ".utf8) + workerIDBytes
        let token = noteSent(room: room, members: [(member.id, value)])
        defer { noteAnswered(room: room, members: [member.id], token: token) }
        _ = try await joinScript.run(on: commands, keys: membershipKeys(room),
                                     arguments: [Array(room.utf8), Array(member.id.utf8), value])
        try await waiter?.wait()
    }

    /// The join script with every member at once: HSET rewrites each entry in place (old
    /// worker id → this one), so the move is atomic and the member never leaves the room.
    public func adopt(room: String, members: [RoomMember]) async throws {
        guard commands.acceptsCommands else { throw RedisError.unavailable(commands.lastError) }
        let waiter = subscriber.subscribe(channelName(room))
        var arguments: [[UInt8]] = [Array(room.utf8)]
        arguments.reserveCapacity(1 + 2 * members.count)
        var sent: [(String, [UInt8]?)] = []
        sent.reserveCapacity(members.count)
        for member in members {
            let value = Array("\(member.joinedAt) ".utf8) + workerIDBytes
            arguments.append(Array(member.id.utf8))
            arguments.append(value)
            sent.append((member.id, value))
        }
        let token = noteSent(room: room, members: sent)
        defer { noteAnswered(room: room, members: members.map(\.id), token: token) }
        _ = try await joinScript.run(on: commands, keys: membershipKeys(room), arguments: arguments)
        try await waiter?.wait()
    }

    public func leave(room: String, memberID: String, lastHere: Bool) async throws {
        try await leave(room: room, memberIDs: [memberID], lastHere: lastHere)
    }

    public func leave(room: String, memberIDs: [String], lastHere: Bool) async throws {
        guard commands.acceptsCommands else { throw RedisError.unavailable(commands.lastError) }
        let token = noteSent(room: room, members: memberIDs.map { ($0, nil) })
        defer { noteAnswered(room: room, members: memberIDs, token: token) }
        var arguments: [[UInt8]] = [Array(room.utf8), Array((lastHere ? "1" : "0").utf8)]
        arguments.reserveCapacity(2 + memberIDs.count)
        for id in memberIDs { arguments.append(Array(id.utf8)) }
        _ = try await leaveScript.run(on: commands, keys: membershipKeys(room), arguments: arguments)
    }

    public func roomVacated(_ room: String) {
        subscriber.unsubscribe(channelName(room))
        if lastRoom == room {
            lastChannel = []
            lastRoom = ""
        }
    }

    public var isCongested: Bool { commands.isPublishCongested || subscribersBacklogged }

    /// A connection to the master of the room's channel is up (on a cluster, that
    /// channel's shard; the others may be down).
    public func acceptsPublish(room: String) -> Bool {
        setChannel(room)
        return commands.acceptsPublish(channel: channel)
    }

    // MARK: Backpressure
    //
    // Two signals make the bus congested: this worker's own publishes not yet
    // acknowledged by Redis (past `publishHighWater`, in RedisClient), and the output
    // buffers Redis holds for the cluster's subscribers (a worker that reads its channels
    // slower than they are said into): after each `backlogCheckBytes` published, the bus
    // asks `CLIENT LIST TYPE pubsub`; past `subscriberBacklogLimit` of `omem` on any
    // subscriber it is congested, and asks again every 10 ms until that is back under.
    // Redis closes a subscriber past 32 MB (or 8 MB for 60 s) by default.

    static let backlogCheckBytes = 1 << 20
    static let subscriberBacklogLimit = 4 << 20
    private var drained: (@LoopActor () -> Void)?
    private var publishedSinceCheck = 0
    private var backlogCheckInFlight = false
    private(set) var subscribersBacklogged = false
    private var backlogCheckRefused = false
    private let clientListCommand: [[UInt8]] = [Array("CLIENT".utf8), Array("LIST".utf8), Array("TYPE".utf8), Array("pubsub".utf8)]

    private func checkSubscriberBacklog() {
        guard !backlogCheckInFlight else { return }
        guard !backlogCheckRefused, !stopped, commands.isReady else {
            // Cannot ask now (Redis lost: the subscribers' buffers went with it).
            if subscribersBacklogged {
                subscribersBacklogged = false
                if !isCongested { drained?() }
            }
            return
        }
        backlogCheckInFlight = true
        publishedSinceCheck = 0
        commands.send(clientListCommand) { [weak self] result in
            guard let self else { return }
            self.backlogCheckInFlight = false
            let was = self.subscribersBacklogged
            switch result {
            case .success(.string(let text)):
                let largest = Self.largestOutputBuffer(clientList: text)
                self.subscribersBacklogged = largest > Self.subscriberBacklogLimit
                if self.subscribersBacklogged {
                    if !was { log.info("redis.subscriber.backlog", ["bytes": String(largest), "action": "slowing says until it drains"]) }
                    EventLoop.current.schedule(afterMilliseconds: 10) { [weak self] in self?.checkSubscriberBacklog() }
                }
            case .success(.error(let message)):
                // (A Redis that refuses CLIENT, e.g. by ACL: acknowledgements alone then.)
                self.backlogCheckRefused = true
                self.subscribersBacklogged = false
                log.warn("redis.subscriber.backlog.unchecked", ["error": message])
            default:
                self.subscribersBacklogged = false
            }
            if was && !self.isCongested { self.drained?() }
        }
    }

    /// The largest `omem=` (bytes Redis queued for a client beyond its fixed buffer) in a
    /// `CLIENT LIST` reply.
    nonisolated static func largestOutputBuffer(clientList: [UInt8]) -> Int {
        let key = Array("omem=".utf8)
        var largest = 0
        var index = 0
        let end = clientList.count
        while index + key.count <= end {
            if clientList[index] == key[0] && Array(clientList[index..<(index + key.count)]) == key
                && (index == 0 || clientList[index - 1] == UInt8(ascii: " ")) {
                index += key.count
                var value = 0
                while index < end, clientList[index] >= UInt8(ascii: "0"), clientList[index] <= UInt8(ascii: "9") {
                    value = value &* 10 &+ Int(clientList[index] - UInt8(ascii: "0"))
                    index += 1
                }
                largest = max(largest, value)
            } else {
                index += 1
            }
        }
        return largest
    }

    public func members(of room: String) async throws -> [RoomMember] {
        guard commands.acceptsCommands else { throw RedisError.unavailable(commands.lastError) }
        let reply = try await membersScript.run(on: commands, keys: [roomKey(room), roomsKey],
                                                arguments: [prefix, Array(room.utf8), workerIDBytes])
        guard let items = reply.array else { throw RedisError.protocolError("roomView: unexpected reply") }
        var members: [RoomMember] = []
        members.reserveCapacity(items.count / 2)
        var index = 0
        while index + 1 < items.count {
            if let id = items[index].text, let joinedAt = items[index + 1].integer {
                members.append(RoomMember(id: id, joinedAt: joinedAt))
            }
            index += 2
        }
        return members
    }

    public func stats() async throws -> ClusterStats {
        guard commands.acceptsCommands else { throw RedisError.unavailable(commands.lastError) }
        heartbeat()  // our own count, current
        let reply = try await reapScript.run(on: commands, keys: [aliveKey, roomsKey],
                                             arguments: [prefix, [], Array("0".utf8), Array("1".utf8)])
        guard let items = reply.array, items.count == 3, let workers = items[0].integer,
              let connections = items[1].integer, let rooms = items[2].integer else {
            throw RedisError.protocolError("stats: unexpected reply")
        }
        return ClusterStats(connections: connections, rooms: rooms, workers: workers)
    }

    public func connectionCountChanged(_ count: Int) {
        connectionCount = count
        // Coalesce churn into one heartbeat 100 ms later.
        guard countTimer?.isPending != true, !stopped else { return }
        countTimer = EventLoop.current.schedule(afterMilliseconds: 100) { [weak self] in self?.heartbeat() }
    }

    // MARK: Registering again

    /// A membership command sent and not answered yet: a join's value, or nil for a leave.
    private struct Sent {
        var token: Int
        var value: [UInt8]?
    }
    /// The joins and leaves in flight, by room and member id (the latest one each). A
    /// resync's clear runs after those sent before it and wipes what they wrote, while
    /// the worker records a join only once it is answered: the registration after the
    /// clear applies them again (a join made while the bus was still connecting is not
    /// lost, a member leaving is not registered again).
    private var inFlight: [String: [String: Sent]] = [:]
    private var lastToken = 0

    private func noteSent(room: String, members: [(String, [UInt8]?)]) -> Int {
        lastToken += 1
        for (id, value) in members { inFlight[room, default: [:]][id] = Sent(token: lastToken, value: value) }
        return lastToken
    }

    private func noteAnswered(room: String, members: [String], token: Int) {
        // (In place: a copy of the room's entries per answer would be quadratic.)
        for id in members where inFlight[room]?[id]?.token == token { inFlight[room]?[id] = nil }
        if inFlight[room]?.isEmpty == true { inFlight[room] = nil }
    }

    /// Clears what Redis holds of this worker and registers its members again (after a
    /// connect, or when the heartbeat found this worker's key gone).
    private func resync() {
        guard commands.isReady else { return }
        heartbeat(checkRegistration: false)
        reap(clearing: workerIDBytes, leave: false)
        var registered = 0
        var rooms = 0
        func register(_ room: String, _ entries: [(id: String, value: [UInt8])]) {
            guard !entries.isEmpty else { return }
            var arguments: [[UInt8]] = [Array(room.utf8)]
            arguments.reserveCapacity(1 + 2 * entries.count)
            for entry in entries {
                arguments.append(Array(entry.id.utf8))
                arguments.append(entry.value)
            }
            registered += entries.count
            rooms += 1
            joinScript.send(on: commands, keys: membershipKeys(room), arguments: arguments) { result in
                if case .success(.error(let message)) = result { log.warn("redis.resync.failed", ["room": room, "error": message]) }
            }
        }
        var seen = Set<String>()
        membership.forEachRoom { room, members in
            seen.insert(room)
            let sent = inFlight[room]
            var entries: [(id: String, value: [UInt8])] = []
            entries.reserveCapacity(members.count)
            for member in members where sent?[member.id] == nil {
                entries.append((member.id, Array("\(member.joinedAt) ".utf8) + workerIDBytes))
            }
            for (id, pending) in sent ?? [:] { if let value = pending.value { entries.append((id, value)) } }
            register(room, entries)
        }
        for (room, sent) in inFlight where !seen.contains(room) {
            register(room, sent.compactMap { id, pending in pending.value.map { (id, $0) } })
        }
        log.info("redis.registered", ["workerId": workerID, "rooms": String(rooms), "members": String(registered)])
    }

    /// The reap script, not waited for: reaps the workers whose heartbeat expired, after
    /// clearing `worker` (its members; with `leave`, also its key and registry entry).
    private func reap(clearing worker: [UInt8] = [], leave: Bool = false) {
        reapScript.send(on: commands, keys: [aliveKey, roomsKey],
                        arguments: [prefix, worker, Array((leave ? "1" : "0").utf8), Array("0".utf8)])
    }

    private func scheduleHeartbeat() {
        heartbeatTimer = EventLoop.current.schedule(afterMilliseconds: Self.heartbeatInterval) { [weak self] in
            guard let self, !self.stopped else { return }
            self.heartbeat()
            self.ticks += 1
            if self.ticks % Self.reapEveryTicks == 0, self.commands.isReady { self.reap() }
            self.scheduleHeartbeat()
        }
    }

    /// Refreshes this worker's key; when Redis had lost it (restart, or reaped after a
    /// stall) and `checkRegistration` is on, registers the members again.
    private func heartbeat(checkRegistration: Bool = true) {
        guard commands.isReady else { return }
        heartbeatScript.send(on: commands, keys: [workerKey, aliveKey],
                             arguments: [Array(String(connectionCount).utf8), Array(String(Self.heartbeatTTL).utf8),
                                         workerIDBytes]) { [weak self] result in
            guard let self else { return }
            if checkRegistration, case .success(.integer(0)) = result, !self.membership.isEmpty {
                log.warn("redis.worker.lost", ["workerId": self.workerID, "reason": "heartbeat key was gone; registering again"])
                self.resync()
            }
        }
    }

    // MARK: Messages

    public func publish(room: String, senderID: String, line: [UInt8]) {
        lastPublishedSequence += 1
        line.withBytes { BusFrame.encode(header: frameHeader, sequence: lastPublishedSequence, line: $0, into: &message) }
        setChannel(room)
        defer { if message.capacity > 1 << 20 { message = [] } }  // (an unusually big one)
        publishedSinceCheck += message.count
        if publishedSinceCheck >= Self.backlogCheckBytes { checkSubscriberBacklog() }
        if !commands.publish([publishVerb, channel, message], bytes: message.count) {
            droppedPublishes += 1
            if droppedPublishes == 1 || droppedPublishes % 1_000 == 0 {
                log.warn("redis.publish.dropped", ["room": room, "dropped": String(droppedPublishes), "error": commands.lastError])
            }
        }
    }

    public func publishMarker(room: String) -> UInt64 {
        publish(room: room, senderID: "0", line: BusFrame.markerLine)
        return lastPublishedSequence
    }

    public func afterMessagesInFlight(_ done: @escaping @LoopActor () -> Void) {
        subscriber.afterMessagesInFlight(done)
    }

    public func subscribe(room: String) async throws {
        try await subscriber.subscribe(channelName(room))?.wait()
    }

    private func received(channel: UnsafeRawBufferPointer, payload: UnsafeRawBufferPointer) {
        // (`withBytes`, not `withUnsafeBytes`, and memcmp: this runs once per message.)
        if let probe, channel.count == probe.channelBytes.count, probe.isProbe(channel) { return probe.heard() }
        guard let (origin, sequence, line) = BusFrame.parse(payload) else { return }
        if heardBefore(origin: origin, channel: channel, sequence: sequence) { return }
        // Our own message: its members were served when it was said (the worker still
        // sees it: a handoff counts positions in the stream).
        let isOwn = workerIDBytes.withBytes({ $0.hasSameBytes(as: origin) })
        let isMarker = line.count == 1 && line[0] == 0
        let room: String
        if lastChannel.withBytes({ $0.hasSameBytes(as: channel) }) {
            room = lastRoom
        } else {
            guard channel.count >= channelPrefix.count,
                  channelPrefix.withBytes({ $0.hasSameBytes(as: UnsafeRawBufferPointer(rebasing: channel[0..<channelPrefix.count])) })
            else { return }
            room = String(decoding: channel[channelPrefix.count...], as: UTF8.self)
            lastChannel = Array(channel)
            lastRoom = room
        }
        deliver?(room, line, BusMessage(origin: origin, sequence: sequence, isOwn: isOwn, isMarker: isMarker))
    }

    // MARK: Repeats

    /// The last sequence heard from each publisher on each channel. A publisher sends
    /// again what a broken connection left unanswered (`RedisClient.unanswered`), so a
    /// message Redis had already run arrives twice; the second is dropped here. Within
    /// one publisher and channel the order holds (one connection to the channel's node),
    /// so anything at or below the last sequence heard is a repeat.
    private var lastSequences: [[UInt8]: UInt64] = [:]
    /// The publisher and channel of the last message (origin, a zero byte, channel), and
    /// its sequence: most messages come from the same one as the message before.
    private var lastSequenceKey: [UInt8] = []
    private var lastSequence: UInt64 = 0
    /// Messages dropped as repeats (for tests).
    public private(set) var repeatsDropped = 0

    private func heardBefore(origin: UnsafeRawBufferPointer, channel: UnsafeRawBufferPointer, sequence: UInt64) -> Bool {
        let same = lastSequenceKey.withBytes { key in
            key.count == origin.count + 1 + channel.count
                && UnsafeRawBufferPointer(rebasing: key[0..<origin.count]).hasSameBytes(as: origin)
                && UnsafeRawBufferPointer(rebasing: key[(origin.count + 1)...]).hasSameBytes(as: channel)
        }
        if !same {
            if !lastSequenceKey.isEmpty { lastSequences[lastSequenceKey] = lastSequence }
            // (Publishers come and go with worker restarts: forget them all now and then.)
            if lastSequences.count > 65_536 { lastSequences.removeAll() }
            lastSequenceKey = Array(origin) + [0] + Array(channel)
            lastSequence = lastSequences[lastSequenceKey] ?? 0
        }
        if sequence <= lastSequence {
            repeatsDropped += 1
            return true
        }
        lastSequence = sequence
        return false
    }

    // MARK: Names

    private var publishVerb = Array("PUBLISH".utf8)
    /// The channel of the message being published, reused.
    private var channel: [UInt8] = []

    private func setChannel(_ room: String) {
        channel.removeAll(keepingCapacity: true)
        channel.append(contentsOf: channelPrefix)
        channel.append(contentsOf: room.utf8)
    }

    func channelName(_ room: String) -> String { endpoint.prefix + "room:" + room }
    func roomKey(_ room: String) -> [UInt8] { prefix + Array("r:".utf8) + Array(room.utf8) }
    /// The keys of the join and leave scripts for `room` (see `Lua`): the room's hash, the
    /// rooms set, this worker's rooms set and the set of ids it joined to the room.
    func membershipKeys(_ room: String) -> [[UInt8]] {
        return [roomKey(room), roomsKey, workerRoomsKey, workerMembersPrefix + Array(room.utf8)]
    }
}
