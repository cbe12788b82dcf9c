import Glibc
import HeraldLoop
import HeraldProtocol

// Input flow control: holds (backpressure), the client's half-close, and the time limits
// on unfinished lines, idle connections and stalled output.

extension Worker {
    /// Pending output above which a connection's input is held (not parsed, not read):
    /// a quarter of `maxOutputBytes`, so one more reply still fits under the limit.
    var outputHighWater: Int { configuration.maxOutputBytes / 4 }
    /// Pending output at or below which input held for the output backlog resumes.
    var outputLowWater: Int { configuration.maxOutputBytes / 8 }

    // MARK: Holds

    /// Stops parsing the connection's input (bytes already read stay buffered in its framer,
    /// the rest wait in the kernel's receive buffer), until every hold is released.
    func holdInput(_ connection: Connection, _ reason: Connection.InputHolds) {
        guard connection.state != .closed, !connection.inputHolds.contains(reason) else { return }
        let wasReading = connection.inputHolds.isEmpty
        connection.inputHolds.insert(reason)
        if reason == .outputBacklog { connection.lastOutputProgressAt = Clock.monotonicMillis }
        if wasReading {
            connection.updateInterest()
            scheduleSweep()
        }
    }

    /// Releases one hold; when none is left, parses what is buffered and reads the socket again.
    /// The parsing happens before this loop iteration ends (not inside the caller, which may
    /// be walking a room or flushing).
    func releaseInput(_ connection: Connection, _ reason: Connection.InputHolds) {
        guard connection.inputHolds.contains(reason) else { return }
        connection.inputHolds.remove(reason)
        guard connection.inputHolds.isEmpty, connection.state != .closed else { return }
        // The unfinished line's clock starts again: it could not be completed while held.
        if connection.lineStartedAt != 0 { connection.lineStartedAt = Clock.monotonicMillis }
        connection.updateInterest()
        if connection.framer.hasHeldInput || connection.transport.hasBufferedInput || connection.inputEnded {
            if !connection.isQueuedForResume {
                connection.isQueuedForResume = true
                resumeQueue.append(connection)
            }
        }
    }

    /// Parses the held input of connections whose holds were all released.
    func resumeReleased() {
        guard !resumeQueue.isEmpty else { return }
        let queue = resumeQueue
        resumeQueue.removeAll(keepingCapacity: true)
        for connection in queue {
            connection.isQueuedForResume = false
            guard connection.state != .closed, connection.inputHolds.isEmpty else { continue }
            if connection.acceptsLines && connection.framer.hasHeldInput {
                connection.framer.resume { event in parsed(event, from: connection) }
                noteLineProgress(connection)
            }
            guard connection.state != .closed, connection.inputHolds.isEmpty else { continue }
            if connection.inputEnded {
                closeIfAnswered(connection)
            } else if connection.transport.hasBufferedInput {
                readable(connection)
            }
        }
    }

    /// Handles one framer event; says whether to go on, stop or hold the rest.
    func parsed(_ event: LineFramer.Event, from connection: Connection) -> LineFramer.Next {
        switch event {
        case .line(let line): handleLine(line, from: connection)
        case .tooLong: lineTooLong(connection)
        }
        guard connection.acceptsLines else { return .stop }
        if connection.pendingOutputBytes > outputHighWater { holdInput(connection, .outputBacklog) }
        return connection.inputHolds.isEmpty ? .proceed : .hold
    }

    /// Notes when an unfinished line began, for `lineTimeout`.
    func noteLineProgress(_ connection: Connection) {
        if connection.framer.hasPartialLine {
            let started = connection.framer.linesStarted
            if connection.lineStartedAt == 0 || connection.lineStartCount != started {
                connection.lineStartCount = started
                connection.lineStartedAt = Clock.monotonicMillis
                scheduleSweep()
            }
        } else if connection.lineStartedAt != 0 {
            connection.lineStartedAt = 0
        }
    }

    // MARK: Half-close

    /// The client sent its FIN: no more input. What it sent before is answered, then
    /// the connection closes.
    func inputEnded(_ connection: Connection) {
        guard connection.state != .closed, !connection.inputEnded else { return }
        connection.inputEnded = true
        connection.updateInterest()
        closeIfAnswered(connection)
        guard connection.isOpen else { return }
        // Still owed replies. The peer may have half-closed and be reading, or be gone
        // altogether (a close looks the same until a write fails): wait, but bounded.
        let limit = configuration.halfClosedWaitLimit
        connection.halfCloseTimer = EventLoop.current.schedule(afterMilliseconds: limit) { [weak self, weak connection] in
            guard let self, let connection, connection.isOpen, connection.inputEnded else { return }
            self.drop(connection, reason: "client closed; replies still owed after \(limit) ms (halfClosedWaitLimit)")
        }
    }

    /// After a half-close: closes once every line is answered (no held input, no pending
    /// action, no reply owed). An unterminated last line is not a request and is dropped.
    func closeIfAnswered(_ connection: Connection) {
        guard connection.inputEnded, connection.isOpen, !connection.framer.hasHeldInput,
              connection.pendingActions == 0, connection.pendingReplies == 0 else { return }
        connection.framer.reset()
        connection.lineStartedAt = 0
        connection.state = .closing
        leaveAllRooms(connection)
        connection.closeReason = .client
        connectionLog.closed(connection, closeFields(connection, reason: "client closed"))
        connection.flush()
    }

    /// A reply counted in `pendingReplies` was sent (or given up).
    func replyFinished(_ connection: Connection) {
        connection.pendingReplies -= 1
        if connection.pendingReplies == 0 { closeIfAnswered(connection) }
    }

    // MARK: Time limits

    /// Milliseconds between sweeps: a quarter of the shortest limit in force, 50 ms to 1 s.
    private var sweepInterval: Int {
        var shortest = Int.max
        for limit in [configuration.lineTimeout, configuration.idleTimeout, configuration.outputStallTimeout] where limit > 0 {
            shortest = min(shortest, limit)
        }
        return min(1_000, max(50, shortest / 4))
    }

    /// Starts the periodic sweep unless it runs already (or no limit is in force). One
    /// timer per worker: nothing per byte, nothing per connection.
    func scheduleSweep() {
        guard sweepTimer == nil, !isStopping else { return }
        let c = configuration
        guard c.lineTimeout > 0 || c.idleTimeout > 0 || c.outputStallTimeout > 0 else { return }
        sweepTimer = EventLoop.current.schedule(afterMilliseconds: sweepInterval) { [weak self] in
            guard let self else { return }
            self.sweepTimer = nil
            if self.sweepTimeouts() { self.scheduleSweep() }
        }
    }

    /// Closes connections past a time limit; true while some connection still needs watching.
    private func sweepTimeouts() -> Bool {
        let now = Clock.monotonicMillis
        let c = configuration
        var watching = false
        forEachConnection { connection in
            guard connection.isOpen else { return }
            if !connection.inputHolds.isEmpty {
                // Not reading: no line can complete, but a client that reads none of its
                // output while its input waits is stalled.
                guard connection.inputHolds.contains(.outputBacklog), c.outputStallTimeout > 0 else { return }
                watching = true
                if now - connection.lastOutputProgressAt > c.outputStallTimeout {
                    log.warn("connection.stalled", ["id": connection.id.string, "pendingOutput": String(connection.pendingOutputBytes)])
                    drop(connection, reason: "output not read for \(c.outputStallTimeout) ms (outputStallTimeout) while requests wait; the client is not reading")
                }
                return
            }
            if connection.inputEnded { return }
            if connection.lineStartedAt != 0 && c.lineTimeout > 0 {
                watching = true
                if now - connection.lineStartedAt > c.lineTimeout {
                    connection.framer.reset()
                    connection.lineStartedAt = 0
                    sayGoodbye(connection, reason: "line not completed within \(c.lineTimeout) ms")
                    return
                }
            }
            if c.idleTimeout > 0 {
                watching = true
                if now - connection.lastInputAt > c.idleTimeout && connection.pendingActions == 0 && connection.pendingReplies == 0 {
                    sayGoodbye(connection, reason: "idle for \(c.idleTimeout) ms")
                }
            }
        }
        return watching
    }
}

extension Clock {
    /// Monotonic milliseconds.
    static var monotonicMillis: Int { Int(monotonicNanos() / 1_000_000) }
}

enum SocketStatus {
    /// The socket's pending error (SO_ERROR), as text; nil when there is none.
    static func pendingError(_ fd: Int32) -> String? {
        var error: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) == 0, error != 0 else { return nil }
        return String(cString: strerror(error))
    }
}

extension Worker {
    /// What a client gets instead of a verb reply bigger than `maxOutputBytes`.
    nonisolated static func replyTooBig(_ bytes: Int, messageCount: Int, maxOutputBytes: Int, to out: inout [UInt8]) {
        ReplyWriter.verbReply(status: "the reply is too big (\(bytes) bytes; maxOutputBytes is \(maxOutputBytes))",
                              data: nil, messageCount: messageCount, to: &out)
    }

    /// What a client gets instead of an action reply bigger than `maxOutputBytes`.
    nonisolated static func actionReplyTooBig(_ bytes: Int, messageCount: Int, maxOutputBytes: Int, to out: inout [UInt8]) {
        ReplyWriter.actionReply(fields: JSONObject(),
                                error: "the reply is too big (\(bytes) bytes; maxOutputBytes is \(maxOutputBytes))",
                                messageCount: messageCount, to: &out)
    }
}
