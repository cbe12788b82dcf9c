import HeraldLoop

/// The bus work of connections arriving and leaving, gathered over one loop iteration
/// and sent in the worker's before-sleep pass as one script per room (per
/// `MembershipBatch.maxMembers`) instead of one per connection: a connect storm of
/// 20,000 connections on a worker is a handful of Redis commands and tasks, not 20,000
/// of each (issue 13; a task and its frame per connection also held ~150 bytes a
/// connection of the heap through the storm).
///
/// Only work whose order does not matter against the connection's own requests goes
/// here: the default room's join at connect (the connection's first request is read in
/// a later iteration, after the batch went out) and the leaves of a closing connection.
/// Joins of an iteration go out before its leaves, so a connection that comes and goes
/// within one iteration is joined, then left.
@LoopActor
struct MembershipBatch {
    /// Members per script call: a script runs in one go on Redis; ~1,000 HSETs are ~1 ms.
    static let maxMembers = 1_000
    /// How long a failed batch waits before it goes again.
    static let retryMilliseconds = 1_000

    /// The connections joining each room (their join time is read when the batch goes).
    private(set) var joins: [String: [Connection]] = [:]
    private(set) var leaves: [String: [String]] = [:]

    var isEmpty: Bool { joins.isEmpty && leaves.isEmpty }

    mutating func join(_ connection: Connection, room: String) { joins[room, default: []].append(connection) }

    mutating func leave(_ memberID: String, room: String) { leaves[room, default: []].append(memberID) }

    /// The gathered work, leaving the batch empty.
    mutating func take() -> (joins: [String: [Connection]], leaves: [String: [String]]) {
        defer { joins = [:]; leaves = [:] }
        return (joins, leaves)
    }
}

extension Worker {
    /// Sends the iteration's batched joins and leaves to the bus (see `MembershipBatch`).
    func flushMembershipBatch() {
        guard !membershipBatch.isEmpty else { return }
        let (joins, leaves) = membershipBatch.take()
        for (room, joining) in joins {
            // Those still in the room (one that closed in this iteration has left it).
            let connections = joining.filter { $0.isOpen && $0.rooms.joinedAt(room) != nil }
            for start in stride(from: 0, to: connections.count, by: MembershipBatch.maxMembers) {
                let chunk = Array(connections[start..<min(start + MembershipBatch.maxMembers, connections.count)])
                let members = chunk.map { RoomMember(id: $0.id.string, joinedAt: $0.rooms.joinedAt(room) ?? 0) }
                Task.onLoop { [self] in
                    do {
                        try await bus.adopt(room: room, members: members)
                    } catch {
                        guard !isStopping else { return }
                        log.warn("room.join.failed", ["room": room, "connections": String(chunk.count), "error": "\(error)",
                                                      "retryMs": String(MembershipBatch.retryMilliseconds)])
                        retryJoins(room: room, chunk)
                    }
                }
            }
        }
        for (room, ids) in leaves {
            // Whether the worker keeps anything of the room, after this batch's joins.
            let lastHere = membership.interest(in: room) == 0
            for start in stride(from: 0, to: ids.count, by: MembershipBatch.maxMembers) {
                let end = min(start + MembershipBatch.maxMembers, ids.count)
                let chunk = Array(ids[start..<end])
                let last = lastHere && end == ids.count
                Task.onLoop { [self] in
                    do {
                        try await bus.leave(room: room, memberIDs: chunk, lastHere: last)
                    } catch {
                        // A stopping worker's bus leaves the cluster as a whole (all its
                        // members at once) as it stops: nothing is left behind then.
                        guard !isStopping else { return }
                        log.warn("room.leave.failed", ["room": room, "connections": String(chunk.count), "error": "\(error)",
                                                       "retryMs": String(MembershipBatch.retryMilliseconds)])
                        EventLoop.current.schedule(afterMilliseconds: MembershipBatch.retryMilliseconds) { [weak self] in
                            guard let self, !self.isStopping else { return }
                            for id in chunk { self.membershipBatch.leave(id, room: room) }
                        }
                    }
                }
            }
        }
    }

    /// A batch of joins that failed (Redis slow or away, e.g. a command timeout in a
    /// connect storm on a loaded host) goes again after a while, for the members still
    /// here: the scripts are idempotent, so one that did reach Redis is merely repeated.
    /// (When the Redis connection itself is lost, the worker registers every member again
    /// once it is back, as well.)
    /// Only the batch's own connections are looked at (the room may hold a million).
    private func retryJoins(room: String, _ connections: [Connection]) {
        EventLoop.current.schedule(afterMilliseconds: MembershipBatch.retryMilliseconds) { [weak self] in
            guard let self, !self.isStopping else { return }
            for connection in connections where connection.isOpen && connection.rooms.joinedAt(room) != nil {
                self.membershipBatch.join(connection, room: room)
            }
        }
    }
}
