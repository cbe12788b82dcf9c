import CHeraldSystem
import Glibc
import HeraldCore
import HeraldLoop
import HeraldProtocol

// The connection handoff as the supervisor drives it (reload and scale-down): it makes a
// socketpair per successor, gives one end to the successor (`adopt`) and the others to
// the worker being replaced (`handOver`), which passes its plain TCP connections over
// them and exits. `herald stop` keeps the goodbye drain.
extension Supervisor {
    /// Tells `successor` (a running worker) to adopt connections arriving on `channel`
    /// (one end of a socketpair; the supervisor closes its copy after sending it).
    func adopt(_ successor: WorkerProcess, channel: Int32) {
        if !successor.sendControl("adopt\n", descriptors: [channel]) {
            log.warn("handoff.adopt.failed", ["pid": String(successor.pid)])
        }
        close(channel)
    }

    /// Tells `old` to hand every connection it can over the given channels (the other ends,
    /// spread over them), falling back to today's goodbye drain for the rest; the worker
    /// exits when done (as after SIGTERM today, state .draining, same kill timer).
    func handOver(_ old: WorkerProcess, channels: [Int32]) {
        defer { for fd in channels { close(fd) } }
        guard markDraining(old, reason: "handoff") else { return }
        guard !channels.isEmpty, channels.count <= DescriptorPassing.maximumPerMessage,
              old.sendControl("handover \(channels.count)\n", descriptors: channels) else {
            log.warn("handoff.fallback", ["pid": String(old.pid), "reason": "the worker cannot be told to hand over; draining it"])
            old.signal(SIGTERM)
            return
        }
    }

    /// Replaces `old` by `successors` (running workers): a channel to each, then the
    /// handoff; with no successor, the goodbye drain.
    func handOff(from old: WorkerProcess, to successors: [WorkerProcess], reason: String) {
        log.info("cluster.handoff", ["pid": String(old.pid), "reason": reason, "successors": String(successors.count)])
        var ends: [Int32] = []
        for successor in successors {
            var pair: [Int32] = [0, 0]
            guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pair) == 0 else {
                log.error("handoff.socketpair.failed", ["error": SystemError("socketpair").description])
                continue
            }
            adopt(successor, channel: pair[0])
            ends.append(pair[1])
        }
        if ends.isEmpty {
            drain(old, reason: reason)
        } else {
            handOver(old, channels: ends)
        }
    }

    /// Connections handed over and drained, by the workers alive and those gone.
    var handoffTotals: HandoffCounts {
        var total = exitedHandoffs
        for worker in workerProcesses {
            total.handedOver += worker.handoff.handedOver
            total.drained += worker.handoff.drained
            total.adopted += worker.handoff.adopted
        }
        return total
    }

    var handoffStatus: JSON {
        let total = handoffTotals
        return .object(JSONObject([("handedOver", .number(Double(total.handedOver))),
                                   ("drained", .number(Double(total.drained))),
                                   ("adopted", .number(Double(total.adopted)))]))
    }
}
