import HeraldLoop
import HeraldProtocol

/// A member of a room as every worker sees it.
public struct RoomMember: Sendable, Equatable {
    public let id: String
    public let joinedAt: Int

    public init(id: String, joinedAt: Int) {
        self.id = id
        self.joinedAt = joinedAt
    }
}

/// A message from the bus as the worker sees it: its identity (origin worker and that
/// worker's sequence number) besides its room and line. Views valid during the call only.
public struct BusMessage {
    public let origin: UnsafeRawBufferPointer
    public let sequence: UInt64
    /// Published by this worker (its members were served when it was said).
    public let isOwn: Bool
    /// A marker (`publishMarker`): a position in the room's stream, not chat.
    public let isMarker: Bool

    public init(origin: UnsafeRawBufferPointer, sequence: UInt64, isOwn: Bool, isMarker: Bool) {
        self.origin = origin
        self.sequence = sequence
        self.isOwn = isOwn
        self.isMarker = isMarker
    }
}

/// Counts across the whole cluster, for the `status` action.
public struct ClusterStats: Sendable, Equatable {
    public var connections: Int
    public var rooms: Int
    public var workers: Int

    public init(connections: Int, rooms: Int, workers: Int) {
        self.connections = connections
        self.rooms = rooms
        self.workers = workers
    }
}

/// Room membership and chat across workers and hosts. The worker delivers to its own
/// members itself and records membership (`Membership`); the bus carries membership and
/// messages to and from the others, and reads the worker's `Membership` instead of
/// keeping a copy.
@LoopActor
public protocol RoomBus: AnyObject {
    /// True for a bus that reaches no other worker: membership is then this worker's own
    /// and nothing is sent through the bus.
    var isLocalOnly: Bool { get }
    /// `deliver`: where messages from other workers go: `line` is the complete chat line
    /// to send to the worker's members of `room` (valid during the call only; not copied).
    /// `deliveredAll`: called after each run of messages the bus read together went to
    /// `deliver` (the worker may gather a run's deliveries and make them then).
    /// `drained`: called when the bus stops being congested (see `isCongested`).
    /// Every message of the rooms the worker receives comes to `deliver`, its own echoes
    /// and markers included (`BusMessage` says which).
    func start(membership: Membership, deliver: @escaping @LoopActor (_ room: String, _ line: UnsafeRawBufferPointer, _ message: BusMessage) -> Void,
               deliveredAll: @escaping @LoopActor () -> Void, drained: @escaping @LoopActor () -> Void)
    /// This worker's id as bus messages name their origin.
    var originID: [UInt8] { get }
    /// The sequence number of the last message this worker published (0: none yet).
    var lastPublishedSequence: UInt64 { get }
    /// Publishes a marker in `room` (a handoff's position); returns its sequence number.
    func publishMarker(room: String) -> UInt64
    /// Receives `room`'s messages (a handoff's successor, before the members arrive; the
    /// caller keeps an interest in the room meanwhile with `Membership.beginJoin`).
    func subscribe(room: String) async throws
    /// Makes `member` visible in `room` on every worker, and this worker a receiver of the
    /// room's messages, before returning. The worker records the member afterwards, and
    /// counts the join in `Membership.beginJoin` meanwhile.
    func join(room: String, member: RoomMember) async throws
    /// Members handed over from another worker (a connection handoff): their entries in
    /// `room` now name this worker, in one step (never missing from the room meanwhile),
    /// and this worker receives the room's messages, before returning.
    func adopt(room: String, members: [RoomMember]) async throws
    /// Removes `memberID` from `room` everywhere. `lastHere`: no other member (nor join on
    /// its way) is left in the room on this worker.
    func leave(room: String, memberID: String, lastHere: Bool) async throws
    /// Removes every one of `memberIDs` from `room` everywhere, in one step (the leaves of
    /// an iteration's closing connections, `MembershipBatch`). `lastHere` as above, after them.
    func leave(room: String, memberIDs: [String], lastHere: Bool) async throws
    /// The worker has no member left in `room` and no join on its way: stop receiving it.
    func roomVacated(_ room: String)
    /// Every member of `room` across the cluster.
    func members(of room: String) async throws -> [RoomMember]
    /// Sends a chat line to the members of `room` on the other workers.
    func publish(room: String, senderID: String, line: [UInt8])
    /// Whether a `publish` to `room` now would reach the other workers (false while the
    /// Redis that carries its channel is unreachable: a `say` is then refused rather than
    /// delivered to some members only).
    func acceptsPublish(room: String) -> Bool
    /// More has been published than Redis has acknowledged, past a high-water mark: the
    /// worker stops reading from connections that say more until `drained` is called.
    var isCongested: Bool { get }
    /// The worker's own connection count changed (reported for cluster stats).
    func connectionCountChanged(_ count: Int)
    func stats() async throws -> ClusterStats
    /// Calls `done` once every message the bus has already been sent for this worker has
    /// gone to `deliver` and `deliveredAll` (a stopping worker's members get what was said
    /// before the stop, then the goodbye). At once for a bus that receives nothing, or
    /// when what was on its way is lost anyway (a broken connection).
    func afterMessagesInFlight(_ done: @escaping @LoopActor () -> Void)
    func stop()
}

extension RoomBus {
    public func acceptsPublish(room: String) -> Bool { true }
    public func afterMessagesInFlight(_ done: @escaping @LoopActor () -> Void) { done() }
}

/// The bus of a single worker with no Redis: membership is this worker's alone.
@LoopActor
/// The worker keeps membership itself (it needs it for delivery anyway) and answers the
/// cluster counts with its own, so this bus holds nothing and sends nothing.
public final class InProcessBus: RoomBus {
    public init() {}

    public var isLocalOnly: Bool { true }
    public func start(membership: Membership, deliver: @escaping @LoopActor (String, UnsafeRawBufferPointer, BusMessage) -> Void,
                      deliveredAll: @escaping @LoopActor () -> Void, drained: @escaping @LoopActor () -> Void) {}
    public var originID: [UInt8] { [0] }
    public var lastPublishedSequence: UInt64 { 0 }
    public func publishMarker(room: String) -> UInt64 { 0 }
    public func subscribe(room: String) async throws {}
    public func join(room: String, member: RoomMember) async throws {}
    public func leave(room: String, memberID: String, lastHere: Bool) async throws {}
    public func leave(room: String, memberIDs: [String], lastHere: Bool) async throws {}
    public func adopt(room: String, members: [RoomMember]) async throws {}
    public func roomVacated(_ room: String) {}
    public func members(of room: String) async throws -> [RoomMember] { [] }
    public func publish(room: String, senderID: String, line: [UInt8]) {}
    public var isCongested: Bool { false }
    public func connectionCountChanged(_ count: Int) {}
    public func stats() async throws -> ClusterStats { ClusterStats(connections: 0, rooms: 0, workers: 1) }

    public func stop() {}
}
