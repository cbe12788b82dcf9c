import CHeraldSystem
import Glibc
import HeraldCore
import HeraldLoop

/// The worker's side of its channel to the supervisor: says when it is ready, reports
/// its counts every second, and stops the worker if the supervisor goes away.
@LoopActor
public final class WorkerReporter: EventHandler {
    private let fd: Int32
    private unowned let worker: Worker
    private var timer: LoopTimer?
    private var closed = false
    /// Command lines from the supervisor not complete yet, and descriptors received that
    /// no command has claimed yet (ControlProtocol).
    private var commands: [UInt8] = []
    private var descriptors: [Int32] = []
    private var greeted = false

    public init(fd: Int32, worker: Worker) throws(SystemError) {
        self.fd = fd
        self.worker = worker
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        try EventLoop.current.register(fd: fd, events: IOEvents.readable | IOEvents.readHangUp, handler: self)
    }

    /// Tells the supervisor the worker accepts connections, then reports every second.
    public func ready() {
        send(.ready)
        scheduleStats()
    }

    public func handleEvents(_ events: UInt32) {
        let received: (bytes: [UInt8], descriptors: [Int32])
        do {
            received = try DescriptorPassing.receive(on: fd, capacity: 4_096)
        } catch let error where error.errno == EAGAIN || error.errno == EINTR {
            return
        } catch {
            return supervisorLost()
        }
        descriptors.append(contentsOf: received.descriptors)
        if received.bytes.isEmpty { return supervisorLost() }
        commands.append(contentsOf: received.bytes)
        while !closed, let newline = commands.firstIndex(of: UInt8(ascii: "\n")) {
            let line = String(decoding: commands[..<newline], as: UTF8.self)
            commands.removeSubrange(...newline)
            handle(command: line)
        }
    }

    private func supervisorLost() {
        // The supervisor is gone: no one will restart or stop this worker.
        log.warn("worker.supervisor.lost", [:])
        stop()
        worker.stop()
    }

    private func takeDescriptors(_ count: Int) -> [Int32]? {
        guard count >= 0, descriptors.count >= count else { return nil }
        let taken = Array(descriptors.prefix(count))
        descriptors.removeFirst(count)
        return taken
    }

    private func handle(command line: String) {
        let words = line.split(separator: " ").map(String.init)
        guard greeted else {
            guard words.count == 2, words[0] == ControlProtocol.hello, Int(words[1]) == ControlProtocol.version else {
                let message = "the supervisor speaks control protocol \"\(line)\"; this worker speaks \(ControlProtocol.hello) \(ControlProtocol.version): the supervisor and the worker binary do not match"
                log.error("worker.control.version", ["received": line, "expected": String(ControlProtocol.version)])
                log.flush()
                printToStandardError("herald worker: \(message)\n")
                exit(3)
            }
            greeted = true
            return
        }
        switch (words.first, words.count) {
        case ("adopt"?, 1):
            guard let fds = takeDescriptors(1) else { return log.error("worker.control.bad", ["command": line]) }
            worker.adopt(channel: fds[0])
        case ("handover"?, 2):
            guard let count = Int(words[1]), let fds = takeDescriptors(count) else {
                return log.error("worker.control.bad", ["command": line])
            }
            log.info("server.handover", ["channels": String(count)])
            worker.handOver(channels: fds)
        default:
            log.error("worker.control.bad", ["command": line])
        }
    }

    private func printToStandardError(_ text: String) {
        _ = text.utf8CString.withUnsafeBufferPointer { write(2, $0.baseAddress, $0.count - 1) }
    }

    public func stop() {
        guard !closed else { return }
        // The last counts (the handoff's) before the channel closes.
        send(.stats)
        closed = true
        timer?.cancel()
        EventLoop.current.unregister(fd: fd)
        close(fd)
    }

    private func scheduleStats() {
        timer = EventLoop.current.schedule(afterMilliseconds: 1_000) { [weak self] in
            guard let self, !self.closed else { return }
            self.send(.stats)
            self.scheduleStats()
        }
    }

    private func send(_ kind: WorkerReport.Kind) {
        guard !closed else { return }
        let stats = worker.statistics
        var report = WorkerReport(kind: kind, serverID: worker.serverID, connections: stats.connections,
                                  rooms: stats.rooms, totalActions: stats.totalActions,
                                  counters: ProcessMetrics.snapshot, redisUp: ProcessMetrics.redisUp,
                                  handoff: worker.handoffCounts)
        report.redisNode = ProcessMetrics.redisNodeSummary
        report.stopWork = worker.stopWork
        let line = report.encoded()
        // Best effort: a report that does not fit now is dropped, never queued.
        _ = line.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
    }
}
