import HeraldLoop

/// The members of one room on this worker, kept for fast delivery: a dense array walked
/// without reference counting (a `say` to a room visits every member). Each member's
/// position is kept in its own `ConnectionRooms` entry (Membership.swift), for O(1)
/// removal. The references are unretained: the worker holds every connection, and a
/// connection leaves all its rooms before the worker lets go of it.
@LoopActor
final class RoomMembers {
    @exclusivity(unchecked) private var members: ContiguousArray<Unmanaged<Connection>> = []
    /// Joins of this room on their way through the bus (see `Membership.beginJoin`).
    @exclusivity(unchecked) var pendingJoins = 0

    var isEmpty: Bool { members.isEmpty }
    var count: Int { members.count }

    /// Adds `connection` last; its position.
    func append(_ connection: Connection) -> Int32 {
        members.append(.passUnretained(connection))
        return Int32(members.count - 1)
    }

    /// Removes the member at `position` by moving the last member into its place; the
    /// member that moved (whose position is now `position`), if any.
    func remove(at position: Int32) -> Connection? {
        let index = Int(position)
        guard index < members.count else { return nil }
        let last = members.removeLast()
        guard index < members.count else { return nil }
        members[index] = last
        return last.takeUnretainedValue()
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
