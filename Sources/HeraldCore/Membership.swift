import HeraldLoop

/// A connection's rooms in the order joined, with their join times; the first is its
/// current room. Part of the connection's session; changed only by `Membership`, so the
/// connection's list and the rooms' member lists never disagree.
struct ConnectionRooms {
    /// One joined room, with where the connection sits in its `RoomMembers` list (kept
    /// here so that a room needs no position table: ~26 bytes less per membership).
    fileprivate struct Entry {
        var name: String
        var joinedAt: Int
        var position: Int32
    }
    /// The first room (the current one) inline, the others after it: a connection in one
    /// room, the common case, allocates nothing for its rooms.
    fileprivate var first: Entry?
    fileprivate var rest: [Entry] = []

    var current: String? { first?.name }
    var count: Int { first == nil ? 0 : 1 + rest.count }
    var isEmpty: Bool { first == nil }
    /// The rooms in the order joined, with their join times.
    var list: [(name: String, joinedAt: Int)] {
        guard let first else { return [] }
        return [(first.name, first.joinedAt)] + rest.map { ($0.name, $0.joinedAt) }
    }
    var names: [String] {
        guard let first else { return [] }
        return [first.name] + rest.map(\.name)
    }

    func contains(_ room: String) -> Bool { entry(room) != nil }

    func joinedAt(_ room: String) -> Int? { entry(room)?.joinedAt }

    private func entry(_ room: String) -> Entry? {
        if let first, first.name == room { return first }
        for joined in rest where joined.name == room { return joined }
        return nil
    }

    fileprivate mutating func append(_ entry: Entry) {
        if first == nil { first = entry } else { rest.append(entry) }
    }

    /// Removes `room`, keeping the order of the others; its entry, or nil.
    fileprivate mutating func remove(_ room: String) -> Entry? {
        if let removed = first, removed.name == room {
            first = rest.isEmpty ? nil : rest.removeFirst()
            return removed
        }
        guard let index = rest.firstIndex(where: { $0.name == room }) else { return nil }
        return rest.remove(at: index)
    }

    fileprivate mutating func setPosition(_ position: Int32, in room: String) {
        if first?.name == room { first!.position = position; return }
        for index in rest.indices where rest[index].name == room { rest[index].position = position; return }
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
        let position = entry(room).append(connection)
        connection.rooms.append(.init(name: room, joinedAt: joinedAt, position: position))
    }

    /// Records that `connection` left `room`.
    func remove(_ connection: Connection, from room: String) {
        guard let left = connection.rooms.remove(room), let members = rooms[room] else { return }
        if let moved = members.remove(at: left.position) { moved.rooms.setPosition(left.position, in: room) }
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
