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
        var buffer = [UInt8](repeating: 0, count: 256)
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR) {
            // The supervisor is gone: no one will restart or stop this worker.
            log.warn("worker.supervisor.lost", [:])
            stop()
            worker.stop()
        }
    }

    public func stop() {
        guard !closed else { return }
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
                                  counters: ProcessMetrics.snapshot, redisUp: ProcessMetrics.redisUp)
        report.redisNode = ProcessMetrics.redisNodeSummary
        let line = report.encoded()
        // Best effort: a report that does not fit now is dropped, never queued.
        _ = line.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
    }
}
