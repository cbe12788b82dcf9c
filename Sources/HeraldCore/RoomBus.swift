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
/// members itself; the bus carries membership and messages to and from the others.
@LoopActor
public protocol RoomBus: AnyObject {
    /// True for a bus that reaches no other worker: membership is then this worker's own
    /// and nothing is sent through the bus.
    var isLocalOnly: Bool { get }
    /// Where messages from other workers go: `line` is the complete chat line to send to
    /// the worker's members of `room` (valid during the call only; not copied).
    func start(deliver: @escaping @LoopActor (_ room: String, _ line: UnsafeRawBufferPointer) -> Void)
    /// Makes `member` visible in `room` on every worker before returning.
    func join(room: String, member: RoomMember) async throws
    func leave(room: String, memberID: String) async throws
    /// Every member of `room` across the cluster.
    func members(of room: String) async throws -> [RoomMember]
    /// Sends a chat line to the members of `room` on the other workers.
    func publish(room: String, senderID: String, line: [UInt8])
    /// The worker's own connection count changed (reported for cluster stats).
    func connectionCountChanged(_ count: Int)
    func stats() async throws -> ClusterStats
    func stop()
}

/// The bus of a single worker with no Redis: membership is this worker's alone.
@LoopActor
/// The worker keeps membership itself (it needs it for delivery anyway) and answers the
/// cluster counts with its own, so this bus holds nothing and sends nothing.
public final class InProcessBus: RoomBus {
    public init() {}

    public var isLocalOnly: Bool { true }
    public func start(deliver: @escaping @LoopActor (String, UnsafeRawBufferPointer) -> Void) {}
    public func join(room: String, member: RoomMember) async throws {}
    public func leave(room: String, memberID: String) async throws {}
    public func members(of room: String) async throws -> [RoomMember] { [] }
    public func publish(room: String, senderID: String, line: [UInt8]) {}
    public func connectionCountChanged(_ count: Int) {}
    public func stats() async throws -> ClusterStats { ClusterStats(connections: 0, rooms: 0, workers: 1) }

    public func stop() {}
}
