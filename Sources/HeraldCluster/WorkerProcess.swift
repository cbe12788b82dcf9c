import CHeraldSystem
import Glibc
import HeraldCore
import HeraldLoop
import HeraldProtocol

/// A worker process as the supervisor sees it, and its end of the worker's channel.
@LoopActor
final class WorkerProcess: EventHandler {
    enum State: String {
        /// Started, not yet accepting.
        case starting
        case running
        /// Told to stop (reload, scale-down, shutdown); finishing its connections.
        case draining
    }

    let index: Int
    let pid: pid_t
    let controlFD: Int32
    let startedAt = Clock.wallMillis()
    var state = State.starting
    var serverID = ""
    var connections = 0
    var rooms = 0
    var totalActions = 0
    /// Its last report's counters and Redis state (for `/metrics` and `/health`).
    var counters = WorkerCounters()
    var redisUp: Bool?
    var handoff = HandoffCounts()
    var redisNode: String?
    /// Its last report's `stopWork` (nil: not stopping, or an older worker).
    var stopWork: Int?
    /// What it has left to do while stopping, for `DrainWatch`: its `stopWork`, or before
    /// a report says it (and from an older worker) its connections and their goodbyes.
    var drainRemaining: Int { stopWork ?? 2 * connections }
    var hasReported = false
    var readyTimer: LoopTimer?
    var killTimer: LoopTimer?
    /// A log reopen (SIGUSR1) came while it was starting: it is told once it is ready.
    var reopenLogWhenReady = false
    private var pending: [UInt8] = []
    private unowned let supervisor: Supervisor
    private var channelOpen = true

    init(index: Int, pid: pid_t, controlFD: Int32, supervisor: Supervisor) throws(SystemError) {
        self.index = index
        self.pid = pid
        self.controlFD = controlFD
        self.supervisor = supervisor
        try EventLoop.current.register(fd: controlFD, events: IOEvents.readable | IOEvents.readHangUp, handler: self)
        _ = sendControl("\(ControlProtocol.hello) \(ControlProtocol.version)\n")
    }

    /// Sends a command line (ControlProtocol), with descriptors attached; false when the
    /// worker's channel is gone.
    func sendControl(_ line: String, descriptors: [Int32] = []) -> Bool {
        guard channelOpen else { return false }
        let bytes = Array(line.utf8)
        var offset = 0
        do {
            offset = try DescriptorPassing.send(on: controlFD, bytes: bytes, descriptors: descriptors)
            while offset < bytes.count {
                let n = bytes.withUnsafeBytes { Glibc.send(controlFD, $0.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL)) }
                guard n > 0 else { return false }
                offset += n
            }
        } catch {
            log.warn("worker.control.failed", ["pid": String(pid), "error": error.description])
            return false
        }
        return true
    }

    /// Reads the reports still waiting on the channel (the last one of a worker that just exited).
    func readRemainingReports() {
        guard channelOpen else { return }
        var buffer = [UInt8](repeating: 0, count: 4_096)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(controlFD, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            guard n > 0 else { break }
            pending.append(contentsOf: buffer[0..<n])
        }
        parseReports()
    }

    func handleEvents(_ events: UInt32) {
        var buffer = [UInt8](repeating: 0, count: 4_096)
        let n = buffer.withUnsafeMutableBytes { read(controlFD, $0.baseAddress, $0.count) }
        if n <= 0 {
            if n < 0 && (errno == EAGAIN || errno == EINTR) { return }
            closeChannel()
            return
        }
        pending.append(contentsOf: buffer[0..<n])
        parseReports()
    }

    private func parseReports() {
        while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
            let line = Array(pending[..<newline])
            pending.removeSubrange(...newline)
            let report = line.withUnsafeBytes { WorkerReport(line: $0) }
            if let report { supervisor.received(report, from: self) }
        }
        if pending.count > 65_536 { pending.removeAll() }
    }

    /// The channel closes when the worker exits; the exit itself comes through SIGCHLD.
    func closeChannel() {
        guard channelOpen else { return }
        channelOpen = false
        EventLoop.current.unregister(fd: controlFD)
        close(controlFD)
    }

    func signal(_ signal: Int32) {
        _ = kill(pid, signal)
    }

    var asJSON: JSON {
        .object(JSONObject([
            ("index", .number(Double(index))), ("pid", .number(Double(pid))), ("serverId", .string(serverID)),
            ("state", .string(state.rawValue)), ("uptime", .number(Double(Clock.wallMillis() - startedAt))),
            ("connections", .number(Double(connections))), ("rooms", .number(Double(rooms))),
            ("totalActions", .number(Double(totalActions))),
            ("handedOver", .number(Double(handoff.handedOver))), ("drained", .number(Double(handoff.drained))),
            ("adopted", .number(Double(handoff.adopted))),
            ("redisUp", redisUp.map(JSON.bool) ?? .null), ("redisNode", redisNode.map(JSON.string) ?? .null),
        ]))
    }
}
