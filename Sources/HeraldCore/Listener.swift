import CHeraldSystem
import Glibc
import HeraldLoop

/// A listening socket on the loop, handing accepted sockets to the worker.
@LoopActor
final class Listener: EventHandler {
    let fd: Int32
    let transports: any TransportFactory
    unowned let worker: Worker
    @exclusivity(unchecked) private var pausedUntilTimer: LoopTimer?

    init(socket: ListeningSocket, worker: Worker) {
        self.fd = socket.fd
        self.transports = socket.transports
        self.worker = worker
    }

    func start() throws(SystemError) {
        try EventLoop.current.register(fd: fd, events: IOEvents.readable, handler: self)
    }

    func stop() {
        pausedUntilTimer?.cancel()
        EventLoop.current.unregister(fd: fd)
    }

    func handleEvents(_ events: UInt32) {
        var storage = sockaddr_storage()
        // Each worker has its own listening sockets (the kernel spreads connections over
        // them), so a wake-up may take a batch.
        for _ in 0..<64 {
            var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let client = herald_accept(fd, &storage, &length)
            if client >= 0 {
                worker.accepted(fd: client, address: storage, transports: transports)
                continue
            }
            let error = herald_errno()
            switch error {
            case EAGAIN, EWOULDBLOCK, EINTR, ECONNABORTED:
                return
            case EMFILE, ENFILE, ENOBUFS, ENOMEM:
                // Out of descriptors or memory: stop accepting for a moment rather than spin.
                log.error("accept.paused", ["reason": SystemError("accept", errno: error).description, "pauseMs": "100"])
                EventLoop.current.unregister(fd: fd)
                pausedUntilTimer = EventLoop.current.schedule(afterMilliseconds: 100) { [weak self] in
                    guard let self, !self.worker.isStopping else { return }
                    try? self.start()
                }
                return
            default:
                log.warn("accept.failed", ["reason": SystemError("accept", errno: error).description])
                return
            }
        }
    }
}
