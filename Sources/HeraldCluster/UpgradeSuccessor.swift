import CHeraldSystem
import Glibc
import HeraldLoop
import HeraldProtocol

/// The new supervisor's side of a binary upgrade (see UpgradeChannel and
/// Supervisor+Upgrade.swift). It has inherited the listening sockets and said hello
/// (`UpgradeInheritance.handshake`); once its own workers serve, it commits: takes over the
/// pidfile and the control socket (`takeOver`), then sends the old supervisor, slot by slot,
/// the end of a socketpair whose other end its new worker adopts connections from. If its
/// workers do not serve in time it tells the old supervisor why and stops.
@LoopActor
public final class UpgradeSuccessor: EventHandler {
    public let predecessor: pid_t
    private let channel: Int32
    private unowned let supervisor: Supervisor
    private var committed = false
    public var isCommitted: Bool { committed }
    private var open = true
    private var timer: LoopTimer?

    public init(inheritance: UpgradeInheritance, supervisor: Supervisor) {
        predecessor = inheritance.predecessor
        channel = inheritance.channel
        self.supervisor = supervisor
    }

    /// Watches the channel and gives the workers `readyMilliseconds` to serve.
    public func start(readyMilliseconds: Int) {
        do {
            try EventLoop.current.register(fd: channel, events: IOEvents.readHangUp, handler: self)
        } catch {
            log.warn("upgrade.channel.watch.failed", ["error": error.description])
        }
        timer = EventLoop.current.schedule(afterMilliseconds: readyMilliseconds) { [weak self] in
            guard let self, !self.committed else { return }
            self.fail("the new workers were not serving within \(readyMilliseconds / 1000) s")
        }
    }

    public func handleEvents(_ events: UInt32) {
        // Only a hang-up is watched: the old supervisor is gone. The commit goes on
        // (its pidfile is stale then).
        log.warn("upgrade.predecessor.gone", ["pid": String(predecessor)])
        closeChannel()
    }

    /// The workers serve: take over, then hand each slot over. `takeOver` claims the pidfile
    /// and opens the control socket; when it throws, the upgrade fails.
    public func commit(takeOver: () throws -> Void) {
        guard !committed else { return }
        timer?.cancel()
        do {
            try takeOver()
        } catch {
            fail("cannot take over from the old supervisor: \(error)")
            return
        }
        committed = true
        supervisor.statusFields["upgradedFrom"] = .number(Double(predecessor))
        log.info("upgrade.committed", ["oldPid": String(predecessor)])
        guard open else { return }
        do {
            try UpgradeChannel.send([("type", .string("commit")), ("pid", .number(Double(getpid())))], on: channel)
            for (index, worker) in supervisor.currentWorkers.enumerated() {
                guard let worker, worker.state == .running else { continue }
                var pair: [Int32] = [0, 0]
                guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pair) == 0 else {
                    log.error("upgrade.slot.failed", ["index": String(index), "error": SystemError("socketpair").description])
                    continue
                }
                supervisor.adopt(worker, channel: pair[0])
                defer { close(pair[1]) }
                try UpgradeChannel.send([("type", .string("slot")), ("index", .number(Double(index)))],
                                        on: channel, descriptors: [pair[1]])
            }
            try UpgradeChannel.send([("type", .string("done"))], on: channel)
        } catch {
            // The old supervisor drains whatever it was not sent.
            log.warn("upgrade.handover.incomplete", ["error": error.description])
        }
        closeChannel()
    }

    private func fail(_ reason: String) {
        log.error("upgrade.failed", ["reason": reason, "action": "stopping; the old supervisor keeps serving"])
        if open { try? UpgradeChannel.send([("type", .string("failed")), ("reason", .string(reason))], on: channel) }
        closeChannel()
        supervisor.stop(status: 1)
    }

    private func closeChannel() {
        guard open else { return }
        open = false
        EventLoop.current.unregister(fd: channel)
        close(channel)
    }
}
