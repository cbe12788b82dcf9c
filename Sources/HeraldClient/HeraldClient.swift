import HeraldProtocol

/// A client for Herald's (ActionHero's) socket protocol.
///
/// Many requests may be in flight at once: each line sent is counted exactly as the
/// server counts it (PROTOCOL.md §3), and each reply is handed to the caller whose
/// line carried its `messageCount`, whatever order the replies come in. One reader
/// thread per connection reads and dispatches; sends are written by the calling task.
///
/// ```swift
/// let client = try await HeraldClient.connect(host: "127.0.0.1", port: 5000)
/// let reply = try await client.action("cacheTest", params: ["key": "k", "value": "v"])
/// await client.disconnect()
/// ```
public final class HeraldClient: Sendable {
    public let host: String
    public let port: Int
    public let options: HeraldClientOptions

    /// Chat lines from other members of this connection's rooms. One consumer; it
    /// finishes when the client ends for good (not across a reconnect).
    public let messages: AsyncStream<ChatMessage>
    /// Everything that happens on the connection (see `HeraldEvent`). One consumer;
    /// finishes when the client ends for good.
    public let events: AsyncStream<HeraldEvent>

    let messageSink: AsyncStream<ChatMessage>.Continuation
    let eventSink: AsyncStream<HeraldEvent>.Continuation
    let state: Locked<ClientState>

    init(host: String, port: Int, options: HeraldClientOptions) {
        self.host = host
        self.port = port
        self.options = options
        (messages, messageSink) = AsyncStream.makeStream(of: ChatMessage.self, bufferingPolicy: .unbounded)
        (events, eventSink) = AsyncStream.makeStream(of: HeraldEvent.self, bufferingPolicy: .unbounded)
        state = Locked(ClientState())
    }

    /// Connects and waits for the welcome line. Throws `.connectFailed` when the
    /// server refuses, cannot be resolved, or sends no welcome within `connectTimeout`.
    public static func connect(host: String = "127.0.0.1", port: Int = 5000,
                               options: HeraldClientOptions = HeraldClientOptions()) async throws(HeraldClientError) -> HeraldClient {
        let client = HeraldClient(host: host, port: port, options: options)
        do {
            let welcome = try await client.open(then: .connected)
            client.state.withLock { $0.rooms = welcome.room.map { [$0] } ?? [] }
        } catch {
            client.finish()
            throw error
        }
        return client
    }

    // MARK: - State

    /// The latest welcome (of the current or last connection).
    public var welcome: Welcome { state.withLock { $0.welcome! } }

    /// True while requests can be sent.
    public var isConnected: Bool { state.withLock { $0.phase == .connected } }

    /// The rooms this client is in, as far as its own successful requests say
    /// (restored after a reconnect).
    public var rooms: [String] { state.withLock { $0.rooms } }

    /// The sticky params this client has set, as far as its own successful requests
    /// say (restored after a reconnect).
    public var stickyParams: JSONObject { state.withLock { $0.params } }

    // MARK: - Requests

    /// Sends one raw request line (a verb or an action, as typed at a telnet prompt)
    /// and returns its reply line, whatever it says. `quit` is `disconnect()`; `file`
    /// is not supported (its reply is not JSON).
    public func send(_ line: String, timeout: Duration? = nil) async throws(HeraldClientError) -> JSONObject {
        try check(line)
        return try await request(Array(line.utf8), label: line, timeout: timeout)
    }

    /// Runs `name` with the connection's sticky params (a plain line, which also sets
    /// the sticky param `action`). Throws `.actionFailed` when the reply has an error.
    @discardableResult
    public func action(_ name: String, timeout: Duration? = nil) async throws(HeraldClientError) -> JSONObject {
        guard !name.isEmpty, !name.utf8.contains(UInt8(ascii: " ")) else {
            throw .invalidRequest("an action name without spaces is required")
        }
        if Array(name.utf8).withUnsafeBytes({ RequestParser.verb($0) }) != nil { throw .invalidRequest("\(name) is a verb, not an action") }
        return try actionResult(try await send(name, timeout: timeout))
    }

    /// Runs `name` with exactly `params` (a JSON request; sticky params are neither
    /// used nor changed). Throws `.actionFailed` when the reply has an error.
    @discardableResult
    public func action(_ name: String, params: JSONObject, timeout: Duration? = nil) async throws(HeraldClientError) -> JSONObject {
        var request = JSONObject()
        request.append("action", .string(name))
        request.append("params", .object(params))
        var line: [UInt8] = []
        JSONWriter.writeObject(request, to: &line)
        return try actionResult(try await self.request(line, label: name, timeout: timeout))
    }

    /// `detailsView`.
    public func details(timeout: Duration? = nil) async throws(HeraldClientError) -> ConnectionDetails {
        ConnectionDetails(try await verb("detailsView", timeout: timeout)?.objectValue ?? JSONObject())
    }

    /// `paramAdd key=value`: a sticky param sent with every later plain action line.
    public func paramAdd(_ key: String, _ value: String, timeout: Duration? = nil) async throws(HeraldClientError) {
        guard !key.isEmpty, !key.contains("="), !key.contains(" ") else {
            throw .invalidRequest("a param key must be non-empty, without '=' or spaces")
        }
        _ = try await verb("paramAdd \(key)=\(value)", timeout: timeout)
    }

    /// `paramView key`: the sticky param's value, nil when unset.
    public func paramView(_ key: String, timeout: Duration? = nil) async throws(HeraldClientError) -> JSON? {
        try await verb("paramView \(key)", timeout: timeout)
    }

    /// `paramsView`: all sticky params in order.
    public func paramsView(timeout: Duration? = nil) async throws(HeraldClientError) -> JSONObject {
        try await verb("paramsView", timeout: timeout)?.objectValue ?? JSONObject()
    }

    /// `paramDelete key`.
    public func paramDelete(_ key: String, timeout: Duration? = nil) async throws(HeraldClientError) {
        _ = try await verb("paramDelete \(key)", timeout: timeout)
    }

    /// `paramsDelete`: forget all sticky params.
    public func paramsDelete(timeout: Duration? = nil) async throws(HeraldClientError) {
        _ = try await verb("paramsDelete", timeout: timeout)
    }

    /// `roomAdd room`. Throws `.refused` when already a member.
    public func roomAdd(_ room: String, timeout: Duration? = nil) async throws(HeraldClientError) {
        try checkRoom(room)
        _ = try await verb("roomAdd \(room)", timeout: timeout)
    }

    /// `roomLeave room`. Throws `.refused` when not a member.
    public func roomLeave(_ room: String, timeout: Duration? = nil) async throws(HeraldClientError) {
        try checkRoom(room)
        _ = try await verb("roomLeave \(room)", timeout: timeout)
    }

    /// `roomView [room]`: the members of `room` (nil: the current room).
    public func roomView(_ room: String? = nil, timeout: Duration? = nil) async throws(HeraldClientError) -> RoomInfo {
        if let room { try checkRoom(room) }
        let line = room.map { "roomView \($0)" } ?? "roomView"
        return RoomInfo(try await verb(line, timeout: timeout)?.objectValue ?? JSONObject())
    }

    /// `say room message`: to the other members of `room`, which this client must be in.
    public func say(room: String, message: String, timeout: Duration? = nil) async throws(HeraldClientError) {
        try checkRoom(room)
        guard !message.isEmpty else { throw .invalidRequest("an empty message") }
        guard state.withLock({ $0.rooms.contains(room) }) else {
            throw .invalidRequest("not in room \(room) (join it with roomAdd first)")
        }
        _ = try await verb("say \(room) \(message)", timeout: timeout)
    }

    /// `say message`: to the other members of the current room.
    public func say(_ message: String, timeout: Duration? = nil) async throws(HeraldClientError) {
        guard !message.isEmpty else { throw .invalidRequest("an empty message") }
        _ = try await verb("say \(message)", timeout: timeout)
    }

    /// `documentation`: `{action: {version: {name, version, description, inputs, outputExample}}}`.
    public func documentation(timeout: Duration? = nil) async throws(HeraldClientError) -> JSONObject {
        try await verb("documentation", timeout: timeout)?.objectValue ?? JSONObject()
    }

    // MARK: - Disconnect

    /// Sends `quit`, waits (at most `timeout`) for the goodbye and the close, and ends
    /// the client for good: pending requests fail, the streams finish. Returns the
    /// goodbye's reason, nil when none came.
    @discardableResult
    public func disconnect(timeout: Duration = .seconds(5)) async -> String? {
        let link: Link? = state.withLock { s in
            switch s.phase {
            case .closed: return nil
            default:
                s.phase = .closing
                return s.link
            }
        }
        guard let link else {
            finishIfNoLink()
            return state.withLock { $0.goodbyeReason }
        }
        link.sendUncounted(Array("quit".utf8))
        let watchdog = Task {
            try? await Task.sleep(for: timeout)
            if !Task.isCancelled { link.transport.shutdown() }
        }
        await withCheckedContinuation { (waiter: CheckedContinuation<Void, Never>) in
            let done = state.withLock { s -> Bool in
                if s.phase == .closed { return true }
                s.closeWaiters.append(waiter)
                return false
            }
            if done { waiter.resume() }
        }
        watchdog.cancel()
        return state.withLock { $0.goodbyeReason }
    }

    // MARK: - Internals shared with the reader

    func check(_ line: String) throws(HeraldClientError) {
        let bytes = Array(line.utf8)
        guard !bytes.isEmpty else { throw .invalidRequest("an empty line (the server ignores it)") }
        if bytes.contains(0x0A) || bytes.contains(0x0D) { throw .invalidRequest("a line break in the request") }
        let word = bytes.prefix { $0 != UInt8(ascii: " ") }
        switch word.withUnsafeBytes({ RequestParser.verb($0) }) {
        case .quit?, .exit?, .close?: throw .invalidRequest("use disconnect() to quit")
        case .file?: throw .invalidRequest("file transfers are not supported by this client")
        default: break
        }
    }

    private func checkRoom(_ room: String) throws(HeraldClientError) {
        guard !room.isEmpty, !room.contains(" ") else { throw .invalidRequest("a room name without spaces is required") }
        try check(room)
    }

    private func actionResult(_ reply: JSONObject) throws(HeraldClientError) -> JSONObject {
        if let error = reply["error"] {
            throw .actionFailed(message: error.stringValue ?? error.description, reply: reply)
        }
        return reply
    }

    /// Sends a verb line; returns its `data` (nil when absent), throws `.refused` unless OK.
    func verb(_ line: String, timeout: Duration?, isInternal: Bool = false) async throws(HeraldClientError) -> JSON? {
        try check(line)
        let reply = try await request(Array(line.utf8), label: line, timeout: timeout, isInternal: isInternal)
        if let error = reply["error"] {
            throw .actionFailed(message: error.stringValue ?? error.description, reply: reply)
        }
        guard let status = reply["status"]?.stringValue, status == "OK" else {
            throw .refused(status: reply["status"]?.stringValue ?? "no status", reply: reply)
        }
        return reply["data"]
    }

    /// Sends one line and waits for the reply carrying its messageCount.
    func request(_ line: [UInt8], label: String, timeout: Duration?, isInternal: Bool = false) async throws(HeraldClientError) -> JSONObject {
        let timeout = timeout ?? options.requestTimeout
        let id = state.withLock { s -> UInt64 in
            s.nextRequestID &+= 1
            return s.nextRequestID
        }
        let bookkeeping = Bookkeeping(line: line)
        do {
            return try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<JSONObject, any Error>) in
                    if Task.isCancelled {
                        continuation.resume(throwing: HeraldClientError.cancelled)
                        return
                    }
                    let pending = Pending(id: id, label: label, continuation: continuation, bookkeeping: bookkeeping)
                    if let error = self.transmit(line, pending: pending, timeout: timeout, isInternal: isInternal) {
                        continuation.resume(throwing: error)
                    }
                }
            } onCancel: {
                self.fail(requestID: id, with: .cancelled)
            }
        } catch let error as HeraldClientError {
            throw error
        } catch {
            throw .cancelled
        }
    }

    /// Counts, registers and writes the line. Returns an error when it was not sent
    /// (the continuation is then not registered).
    private func transmit(_ line: [UInt8], pending: Pending, timeout: Duration, isInternal: Bool) -> HeraldClientError? {
        let link = state.withLock { s -> Link? in
            switch s.phase {
            case .connected: return s.link
            case .restoring where isInternal: return s.link
            default: return nil
            }
        }
        guard let link else { return .notConnected }
        let id = pending.id
        let timer = Task { [weak self] in
            try? await Task.sleep(for: timeout)
            guard !Task.isCancelled, let self else { return }
            self.expire(requestID: id, after: timeout)
        }
        let error = link.io.withLock { io -> HeraldClientError? in
            if io.closed { return .notConnected }
            let count = io.messageCount + 1
            var entry = pending
            entry.timer = timer
            entry.messageCount = count
            let registered = state.withLock { s -> Bool in
                guard s.link === link else { return false }
                s.pending[count] = entry
                return true
            }
            guard registered else { return .notConnected }
            io.messageCount = count
            var bytes = line
            bytes.append(0x0A)
            if let error = writeAll(bytes, to: link.transport) {
                _ = state.withLock { $0.pending.removeValue(forKey: count) }
                link.transport.shutdown()
                return .connectionClosed(reason: error.description)
            }
            return nil
        }
        if error != nil { timer.cancel() }
        return error
    }

    private func expire(requestID id: UInt64, after timeout: Duration) {
        let entry = state.withLock { s -> Pending? in
            guard let key = s.pending.first(where: { $0.value.id == id })?.key else { return nil }
            return s.pending.removeValue(forKey: key)
        }
        guard let entry else { return }
        eventSink.yield(.timeout(request: entry.label, messageCount: entry.messageCount))
        entry.continuation.resume(throwing: HeraldClientError.timedOut(request: entry.label, messageCount: entry.messageCount, after: timeout))
    }

    private func fail(requestID id: UInt64, with error: HeraldClientError) {
        let entry = state.withLock { s -> Pending? in
            guard let key = s.pending.first(where: { $0.value.id == id })?.key else { return nil }
            return s.pending.removeValue(forKey: key)
        }
        entry?.timer?.cancel()
        entry?.continuation.resume(throwing: error)
    }
}
