import HeraldLoop

/// The members of one room on this worker, kept for fast delivery: a dense array walked
/// without reference counting (a `say` to a room visits every member), and positions for
/// O(1) removal. The references are unretained: the worker holds every connection, and a
/// connection leaves all its rooms before the worker lets go of it.
@LoopActor
final class RoomMembers {
    @exclusivity(unchecked) private var members: ContiguousArray<Unmanaged<Connection>> = []
    @exclusivity(unchecked) private var positions: [ObjectIdentifier: Int] = [:]
    /// Joins of this room on their way through the bus (see `Membership.beginJoin`).
    @exclusivity(unchecked) var pendingJoins = 0

    var isEmpty: Bool { members.isEmpty }
    var count: Int { members.count }

    func insert(_ connection: Connection) {
        let key = ObjectIdentifier(connection)
        guard positions[key] == nil else { return }
        positions[key] = members.count
        members.append(.passUnretained(connection))
    }

    func remove(_ connection: Connection) {
        guard let position = positions.removeValue(forKey: ObjectIdentifier(connection)) else { return }
        let last = members.removeLast()
        if position < members.count {
            members[position] = last
            positions[ObjectIdentifier(last.takeUnretainedValue())] = position
        }
    }

    /// Calls `body` with each member. `body` must not change this room's membership.
    @inline(__always)
    func forEach(_ body: (Connection) -> Void) {
        for index in members.indices {
            members[index]._withUnsafeGuaranteedRef(body)
        }
    }

    var connections: [Connection] { members.map { $0.takeUnretainedValue() } }
}
