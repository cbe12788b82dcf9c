import HeraldProtocol

/// Where a client is in its life.
enum Phase: Equatable, Sendable {
    /// Opening a connection, waiting for its welcome.
    case opening
    /// Reconnected: restoring rooms and params (only the client's own requests go out).
    case restoring
    case connected
    /// Between connections, the reconnect loop running.
    case reconnecting
    /// `disconnect()` called.
    case closing
    /// Ended for good.
    case closed
}

struct ClientState {
    var phase: Phase = .opening
    /// The phase a welcome moves `.opening` to: `.connected` on the first connect,
    /// `.restoring` on a reconnect.
    var phaseAfterWelcome: Phase = .connected
    var link: Link?
    /// Requests awaiting replies on the current link, by messageCount.
    var pending: [Int: Pending] = [:]
    var welcome: Welcome?
    var welcomeWaiter: CheckedContinuation<Welcome, any Error>?
    /// The rooms joined and params set, from this client's successful requests.
    var rooms: [String] = []
    var params = JSONObject()
    var goodbyeReason: String?
    var closeWaiters: [CheckedContinuation<Void, Never>] = []
    var nextRequestID: UInt64 = 0
}

struct Pending {
    let id: UInt64
    let label: String
    let continuation: CheckedContinuation<JSONObject, any Error>
    let bookkeeping: Bookkeeping
    var timer: Task<Void, Never>?
    var messageCount = 0

    init(id: UInt64, label: String, continuation: CheckedContinuation<JSONObject, any Error>, bookkeeping: Bookkeeping) {
        self.id = id
        self.label = label
        self.continuation = continuation
        self.bookkeeping = bookkeeping
    }
}

/// What a request line changes in the state the client restores after a reconnect,
/// classified with the server's own request parser.
enum Bookkeeping: Sendable {
    case none
    case paramSet(String, String)
    case paramDelete(String)
    case paramsDelete
    case roomJoin(String)
    case roomLeave(String)
    case roomChange(String)
    case action(String)

    init(line: [UInt8]) {
        let request = line.withUnsafeBytes { RequestParser.parse($0) }
        switch request {
        case .verb(let verb, let arguments):
            switch verb {
            // The server's own rules (VerbArguments): `roomAdd a b` joins `a`.
            case .paramAdd:
                guard let (key, value) = VerbArguments.paramAdd(arguments) else { self = .none; return }
                self = .paramSet(key, value)
            case .paramDelete: self = .paramDelete(VerbArguments.firstWord(arguments))
            case .paramsDelete: self = .paramsDelete
            case .roomAdd, .listenToRoom: self = .roomJoin(VerbArguments.firstWord(arguments))
            case .roomLeave, .silenceRoom: self = .roomLeave(VerbArguments.firstWord(arguments))
            case .roomChange: self = .roomChange(VerbArguments.firstWord(arguments))
            default: self = .none
            }
        case .action(let name):
            self = .action(name)
        default:
            self = .none
        }
    }

    /// Applies the change when `reply` says it happened.
    func apply(reply: JSONObject, to state: inout ClientState) {
        let ok = reply["status"]?.stringValue == "OK"
        switch self {
        case .none: break
        case .paramSet(let key, let value): if ok { state.params[key] = .string(value) }
        case .paramDelete(let key): if ok { state.params[key] = nil }
        case .paramsDelete: if ok { state.params.removeAll() }
        case .roomJoin(let room): if ok && !state.rooms.contains(room) { state.rooms.append(room) }
        case .roomLeave(let room): if ok { state.rooms.removeAll { $0 == room } }
        case .roomChange(let room): if ok { state.rooms = [room] }
        case .action(let name): state.params["action"] = .string(name)
        }
    }
}

/// One connection: its transport and the count of lines sent on it.
final class Link: Sendable {
    struct IO {
        var messageCount = 0
        var closed = false
    }

    let transport: any HeraldTransport
    /// Held while a line is counted and written, so lines go out in count order.
    let io = Locked(IO())

    init(transport: any HeraldTransport) { self.transport = transport }

    /// Writes a line no reply is matched to (`quit`), counting it as the server does.
    func sendUncounted(_ line: [UInt8]) {
        io.withLock { io in
            guard !io.closed else { return }
            io.messageCount += 1
            var bytes = line
            bytes.append(0x0A)
            if writeAll(bytes, to: transport) != nil { transport.shutdown() }
        }
    }

    /// Ends the stream and releases it once no write is in progress. Reader thread only.
    func close() {
        transport.shutdown()
        io.withLock { io in
            guard !io.closed else { return }
            io.closed = true
            transport.close()
        }
    }
}

/// Writes `bytes`; returns the failure, if any.
func writeAll(_ bytes: [UInt8], to transport: any HeraldTransport) -> HeraldTransportError? {
    bytes.withUnsafeBytes { raw -> HeraldTransportError? in
        do throws(HeraldTransportError) {
            try transport.write(raw)
            return nil
        } catch {
            return error
        }
    }
}

extension HeraldClient {
    /// Opens a connection on a new reader thread and waits for its welcome.
    func open(then next: Phase) async throws(HeraldClientError) -> Welcome {
        do {
            return try await withCheckedThrowingContinuation { (waiter: CheckedContinuation<Welcome, any Error>) in
                let ok = state.withLock { s -> Bool in
                    if s.phase == .closing || s.phase == .closed { return false }
                    s.phase = .opening
                    s.phaseAfterWelcome = next
                    s.welcomeWaiter = waiter
                    return true
                }
                guard ok else {
                    waiter.resume(throwing: HeraldClientError.notConnected)
                    return
                }
                startThread { self.runConnection() }
            }
        } catch let error as HeraldClientError {
            throw error
        } catch {
            throw .connectFailed("\(error)")
        }
    }

    /// The reader thread: connects, then reads and dispatches until the stream ends.
    private func runConnection() {
        let transport: any HeraldTransport
        do {
            transport = try options.connector.open(host, port, options.connectTimeout)
        } catch {
            openFailed(error.tls.map { .tls($0) } ?? .connectFailed(error.description))
            return
        }
        let link = Link(transport: transport)
        let accepted = state.withLock { s -> Bool in
            guard s.phase == .opening else { return false }
            s.link = link
            s.goodbyeReason = nil
            return true
        }
        guard accepted else {
            transport.close()
            openFailed(.notConnected)
            return
        }
        let timeout = options.connectTimeout
        Task { [weak self] in
            try? await Task.sleep(for: timeout)
            guard let self else { return }
            if self.state.withLock({ $0.link === link && $0.welcomeWaiter != nil }) {
                link.transport.shutdown()
            }
        }
        read(link)
    }

    /// A connection attempt failed before it had a link.
    private func openFailed(_ error: HeraldClientError) {
        let (waiter, closeWaiters, final) = state.withLock { s in
            let waiter = s.welcomeWaiter
            s.welcomeWaiter = nil
            var final = false
            switch s.phase {
            case .opening:
                if s.phaseAfterWelcome == .connected { s.phase = .closed; final = true } else { s.phase = .reconnecting }
            case .closing:
                s.phase = .closed
                final = true
            default: break
            }
            let closeWaiters = final ? s.closeWaiters : []
            if final { s.closeWaiters = [] }
            return (waiter, closeWaiters, final)
        }
        waiter?.resume(throwing: error)
        if final {
            for w in closeWaiters { w.resume() }
            finish()
        }
    }

    private func read(_ link: Link) {
        var framer = LineFramer(maxLineBytes: options.maxReplyBytes)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 16)
        defer { buffer.deallocate() }
        var reason: String?
        var tlsFailure: HeraldTLSError?
        while true {
            let n: Int
            do {
                n = try link.transport.read(into: buffer)
            } catch {
                reason = error.description
                tlsFailure = error.tls
                break
            }
            if n == 0 { break }
            var tooLong = false
            framer.feed(UnsafeRawBufferPointer(rebasing: buffer[0..<n])) { event in
                switch event {
                case .line(let bytes):
                    handleLine(bytes, link: link)
                    return true
                case .tooLong:
                    tooLong = true
                    return false
                }
            }
            if tooLong {
                reason = "a reply line longer than \(options.maxReplyBytes) bytes"
                eventSink.yield(.error(.badReply(reason!)))
                break
            }
        }
        linkEnded(link, reason: reason, tls: tlsFailure)
    }

    private func handleLine(_ bytes: UnsafeRawBufferPointer, link: Link) {
        guard case .object(let object)? = try? JSONParser.parse(bytes) else {
            eventSink.yield(.error(.badReply("not a JSON object: \(String(decoding: bytes.prefix(200), as: UTF8.self))")))
            return
        }
        switch object["context"]?.stringValue {
        case "response":
            guard let count = object["messageCount"]?.numberValue, count == count.rounded(), abs(count) < 1e15 else {
                eventSink.yield(.error(.badReply("a response without messageCount: \(object)")))
                return
            }
            let entry = state.withLock { s -> Pending? in
                guard s.link === link, let entry = s.pending.removeValue(forKey: Int(count)) else { return nil }
                entry.bookkeeping.apply(reply: object, to: &s)
                return entry
            }
            // nil: its request timed out or was cancelled; the reply is dropped.
            guard let entry else { return }
            entry.timer?.cancel()
            entry.continuation.resume(returning: object)
        case "user":
            let message = ChatMessage(object)
            messageSink.yield(message)
            eventSink.yield(.say(message))
        case "api":
            if let welcome = Welcome(object) {
                let waiter = state.withLock { s -> CheckedContinuation<Welcome, any Error>? in
                    guard s.link === link else { return nil }
                    s.welcome = welcome
                    if s.phase == .opening { s.phase = s.phaseAfterWelcome }
                    let waiter = s.welcomeWaiter
                    s.welcomeWaiter = nil
                    return waiter
                }
                eventSink.yield(.welcome(welcome))
                waiter?.resume(returning: welcome)
            } else if object["status"]?.stringValue == "Bye!" {
                let reason = object["reason"]?.stringValue ?? "goodbye"
                state.withLock { s in if s.link === link { s.goodbyeReason = reason } }
                eventSink.yield(.goodbye(reason: reason))
            } else if let error = object["error"] {
                eventSink.yield(.error(.actionFailed(message: error.stringValue ?? error.description, reply: object)))
            } else {
                eventSink.yield(.api(object))
            }
        default:
            eventSink.yield(.api(object))
        }
    }

    /// `tls`: the server refused the TLS session (e.g. this client's certificate) before
    /// its first byte; a connect waiting for the welcome throws it as `.tls`.
    private func linkEnded(_ link: Link, reason: String?, tls: HeraldTLSError? = nil) {
        link.close()
        struct Outcome {
            var pending: [Pending] = []
            var welcomeWaiter: CheckedContinuation<Welcome, any Error>?
            var closeWaiters: [CheckedContinuation<Void, Never>] = []
            var why = ""
            var final = false
            var startReconnect = false
            var welcomed = false
        }
        let outcome = state.withLock { s -> Outcome? in
            guard s.link === link else { return nil }
            var o = Outcome()
            s.link = nil
            o.pending = Array(s.pending.values).sorted { $0.messageCount < $1.messageCount }
            s.pending.removeAll()
            o.welcomeWaiter = s.welcomeWaiter
            o.welcomed = s.welcomeWaiter == nil
            s.welcomeWaiter = nil
            o.why = s.goodbyeReason ?? reason ?? "closed by the server"
            switch s.phase {
            case .connected:
                if options.reconnect != nil {
                    s.phase = .reconnecting
                    o.startReconnect = true
                } else {
                    s.phase = .closed
                    o.final = true
                }
            case .opening:
                if s.phaseAfterWelcome == .connected { s.phase = .closed; o.final = true } else { s.phase = .reconnecting }
            case .restoring:
                s.phase = .reconnecting
            case .closing:
                s.phase = .closed
                o.final = true
            case .reconnecting, .closed:
                break
            }
            if o.final {
                o.closeWaiters = s.closeWaiters
                s.closeWaiters = []
            }
            return o
        }
        guard let outcome else { return }
        for entry in outcome.pending {
            entry.timer?.cancel()
            entry.continuation.resume(throwing: HeraldClientError.connectionClosed(reason: outcome.why))
        }
        outcome.welcomeWaiter?.resume(throwing: tls.map { HeraldClientError.tls($0) }
                                                ?? HeraldClientError.connectFailed("no welcome (\(outcome.why))"))
        if outcome.welcomed {
            eventSink.yield(.end(reason: outcome.why, willReconnect: !outcome.final))
        }
        if outcome.startReconnect {
            Task { await self.reconnectLoop() }
        }
        if outcome.final {
            for waiter in outcome.closeWaiters { waiter.resume() }
            finish()
        }
    }

    /// Reconnects with backoff until connected and restored, given up, or disconnected.
    private func reconnectLoop() async {
        guard let policy = options.reconnect else { return }
        var delay = policy.initialDelay
        var attempt = 0
        while true {
            attempt += 1
            if let max = policy.maxAttempts, attempt > max {
                giveUp("gave up reconnecting after \(max) attempts")
                return
            }
            eventSink.yield(.reconnecting(attempt: attempt, delay: delay))
            try? await Task.sleep(for: delay)
            guard state.withLock({ $0.phase == .reconnecting }) else { return }
            if let welcome = try? await open(then: .restoring) {
                await restore(after: welcome)
                let done = state.withLock { s -> Bool in
                    guard s.phase == .restoring else { return false }
                    s.phase = .connected
                    return true
                }
                if done {
                    eventSink.yield(.reconnected(welcome))
                    return
                }
            }
            guard state.withLock({ $0.phase == .reconnecting }) else { return }
            delay = min(delay * policy.multiplier, policy.maxDelay)
        }
    }

    /// Re-sets the sticky params and re-joins (and leaves) rooms to match what this
    /// client had before. Refusals are skipped; a dropped link ends it early.
    private func restore(after welcome: Welcome) async {
        let (params, rooms) = state.withLock { ($0.params, $0.rooms) }
        var lines: [String] = []
        for (key, value) in params {
            guard let text = value.stringValue, !text.contains("\n"), !text.contains("\r") else { continue }
            lines.append("paramAdd \(key)=\(text)")
        }
        let current = welcome.room.map { [$0] } ?? []
        for room in rooms where !current.contains(room) { lines.append("roomAdd \(room)") }
        for room in current where !rooms.contains(room) { lines.append("roomLeave \(room)") }
        for line in lines {
            do {
                _ = try await verb(line, timeout: options.requestTimeout, isInternal: true)
            } catch .refused, .actionFailed {
                continue
            } catch {
                return
            }
        }
        // Keep the tracked order (the leaves above removed rooms the old connection had left).
        state.withLock { s in s.rooms = rooms.filter { s.rooms.contains($0) } }
    }

    private func giveUp(_ why: String) {
        let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>]? in
            guard s.phase == .reconnecting else { return nil }
            s.phase = .closed
            let w = s.closeWaiters
            s.closeWaiters = []
            return w
        }
        guard let waiters else { return }
        eventSink.yield(.end(reason: why, willReconnect: false))
        for w in waiters { w.resume() }
        finish()
    }

    /// `disconnect()` with no link: ends at once.
    func finishIfNoLink() {
        let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>]? in
            guard s.link == nil, s.phase != .closed else { return nil }
            s.phase = .closed
            let w = s.closeWaiters
            s.closeWaiters = []
            return w
        }
        guard let waiters else { return }
        for w in waiters { w.resume() }
        finish()
    }

    func finish() {
        messageSink.finish()
        eventSink.finish()
    }
}
