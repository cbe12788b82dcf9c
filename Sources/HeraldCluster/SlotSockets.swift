import CHeraldSystem
import Glibc
import HeraldLoop

/// The listening sockets of each worker slot, owned by the supervisor for as long as the
/// slot exists. Each slot has its own sockets on the shared ports (SO_REUSEPORT): the
/// kernel spreads connections evenly over them, and because the supervisor keeps a
/// slot's sockets open while its worker is replaced (reload, crash), connections queued
/// on them wait for the new worker instead of being refused.
@LoopActor
public final class SlotSockets {
    public typealias Bind = @LoopActor (_ slot: Int) throws -> [Int32]

    private var sockets: [Int: [Int32]] = [:]
    private let bind: Bind

    /// `first` are slot 0's sockets (bound before the loop starts, so that a busy port
    /// fails the start); `bind` makes those of further slots.
    public init(first: [Int32], bind: @escaping Bind) {
        sockets[0] = first.map(Self.moveOutOfTheWay)
        self.bind = bind
    }

    /// The sockets a binary upgrade's new supervisor inherited, slot 0 first.
    public init(inherited slots: [[Int32]], bind: @escaping Bind) {
        for (slot, fds) in slots.enumerated() { sockets[slot] = fds.map(Self.moveOutOfTheWay) }
        self.bind = bind
    }

    /// The sockets of `slot`, binding them on first use.
    func fds(for slot: Int) throws -> [Int32] {
        if let fds = sockets[slot] { return fds }
        let fds = try bind(slot).map(Self.moveOutOfTheWay)
        sockets[slot] = fds
        return fds
    }

    /// Closes a slot's sockets (scale-down). Connections the kernel already queued on
    /// them are reset once the slot's draining worker has exited too.
    func release(slot: Int) {
        guard slot != 0, let fds = sockets.removeValue(forKey: slot) else { return }
        for fd in fds { close(fd) }
    }

    /// Above the numbers workers receive their sockets at, so each dup2 really moves one.
    private static func moveOutOfTheWay(_ fd: Int32) -> Int32 { herald_move_fd_above(fd, 10) }
}
