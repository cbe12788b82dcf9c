import Glibc

// A STAND-IN for the connection handoff (branch `handoff`, Supervisor+Handoff.swift), with
// the same signatures, so that the binary upgrade compiles and works with today's drain.
// Delete this file when merging the handoff.
extension Supervisor {
    /// Tells `successor` (a running worker) to adopt connections arriving on `channel`
    /// (one end of a socketpair; the supervisor closes its copy after sending it).
    /// Stand-in: the successor adopts nothing.
    func adopt(_ successor: WorkerProcess, channel: Int32) {
        close(channel)
    }

    /// Tells `old` to hand every connection it can over the given channels, falling back to the
    /// goodbye drain for the rest; the worker exits when done (state .draining, same kill timer).
    /// Stand-in: every connection gets the goodbye drain (SIGTERM).
    func handOver(_ old: WorkerProcess, channels: [Int32]) {
        for channel in channels { close(channel) }
        drain(old, reason: "upgrade")
    }
}
