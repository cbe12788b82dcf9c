import HeraldLoop

/// A connection's rooms in the order joined, with their join times; the first is its
/// current room. Part of the connection's session; changed only by `Membership`, so the
/// connection's list and the rooms' member lists never disagree.
struct ConnectionRooms {
    fileprivate(set) var list: [(name: String, joinedAt: Int)] = []

    var current: String? { list.first?.name }
    var count: Int { list.count }
    var isEmpty: Bool { list.isEmpty }
    var names: [String] { list.map(\.name) }

    func contains(_ room: String) -> Bool {
        for joined in list where joined.name == room { return true }
        return false
    }

    func joinedAt(_ room: String) -> Int? {
        for joined in list where joined.name == room { return joined.joinedAt }
        return nil
    }
}

/// Room membership on this worker, recorded in one place: each connection's own list of
/// rooms (`Connection.rooms`) and, changed together with it, each room's members for
/// delivery (`RoomMembers`: dense, unretained). A join is recorded once the bus has made it
/// visible everywhere, a leave once the bus has removed it, so one that fails changes
/// nothing. The bus keeps no copy: it reads this (to register the worker's members again
/// after Redis comes back, to know whether the worker still needs a room's channel).
@LoopActor
public final class Membership {
    @exclusivity(unchecked) private var rooms: [String: RoomMembers] = [:]

    public init() {}

    /// Rooms with members here (or a join on its way).
    public var roomCount: Int { rooms.count }
    public var isEmpty: Bool { rooms.isEmpty }

    /// The room's members here, for delivery; nil when it has none.
    @inline(__always)
    func members(of room: String) -> RoomMembers? { rooms[room] }

    /// Records that `connection` is in `room` (last in its list).
    func add(_ connection: Connection, to room: String, joinedAt: Int) {
        guard !connection.rooms.contains(room) else { return }
        connection.rooms.list.append((room, joinedAt))
        entry(room).insert(connection)
    }

    /// Records that `connection` left `room`.
    func remove(_ connection: Connection, from room: String) {
        connection.rooms.list.removeAll { $0.name == room }
        guard let members = rooms[room] else { return }
        members.remove(connection)
        if members.isEmpty && members.pendingJoins == 0 { rooms[room] = nil }
    }

    /// A join of `room` is on its way through the bus: the worker keeps the room's
    /// channel until it has ended (`endJoin`), whatever other members do meanwhile.
    func beginJoin(_ room: String) { entry(room).pendingJoins += 1 }

    func endJoin(_ room: String) {
        guard let members = rooms[room] else { return }
        members.pendingJoins -= 1
        if members.isEmpty && members.pendingJoins == 0 { rooms[room] = nil }
    }

    /// Members here plus joins on their way: 0 when the worker needs nothing of `room`.
    public func interest(in room: String) -> Int {
        guard let members = rooms[room] else { return 0 }
        return members.count + members.pendingJoins
    }

    /// The room's members here as the cluster sees them.
    public func memberList(of room: String) -> [RoomMember] {
        guard let members = rooms[room] else { return [] }
        return members.connections.compactMap { member in
            member.rooms.joinedAt(room).map { RoomMember(id: member.id.string, joinedAt: $0) }
        }
    }

    /// Every room with members here, with them.
    public func forEachRoom(_ body: (_ room: String, _ members: [RoomMember]) -> Void) {
        for room in rooms.keys {
            let members = memberList(of: room)
            if !members.isEmpty { body(room, members) }
        }
    }

    private func entry(_ room: String) -> RoomMembers {
        if let members = rooms[room] { return members }
        let members = RoomMembers()
        rooms[room] = members
        return members
    }
}
