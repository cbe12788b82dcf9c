import Glibc
import HeraldLoop
import HeraldProtocol

extension Worker {
    /// One complete, non-empty line from a client.
    func handleLine(_ line: UnsafeRawBufferPointer, from connection: Connection) {
        connection.messageCount += 1
        let count = connection.messageCount
        // The line is exactly the last action's name (what `RequestParser` would say, as
        // `knownLine` holds only names it reads as that action): no parse, no lookup.
        if line.count == knownLineCount, let action = lastAction, let bytes = line.baseAddress,
           memcmp(bytes, knownLine, line.count) == 0 {
            connection.setSticky("action", string: action.name)
            runKnownAction(action, for: connection, messageCount: count)
            return
        }
        switch RequestParser.parse(line, knownAction: lastAction?.name) {
        case .verb(let verb, let arguments):
            handleVerb(verb, arguments: arguments, from: connection, messageCount: count)
        case .action(let name):
            connection.setSticky("action", string: name)
            runAction(named: name, params: connection.params, for: connection, messageCount: count)
        case .jsonAction(let name, let params):
            runAction(named: name, params: params ?? JSONObject(), for: connection, messageCount: count)
        case .bad(let error):
            connection.sendActionReply(fields: JSONObject(), error: error, messageCount: count)
        }
    }

    /// Checks and starts an action; its reply is sent when it finishes.
    func runAction(named name: String, params: JSONObject, for connection: Connection, messageCount: Int) {
        guard admits(name, connection, messageCount: messageCount) else { return }
        guard let action = lookUpAction(name) else {
            return refuse("Error: \(name.isEmpty ? "{no action}" : name) is not a known action.",
                          action: name, connection, messageCount: messageCount)
        }
        start(action, params: params, for: connection, messageCount: messageCount)
    }

    /// `runAction(named: action.name, params: connection.params, …)` for the action found
    /// last (no lookup, and fewer copies of the name and params on the way).
    private func runKnownAction(_ action: Action, for connection: Connection, messageCount: Int) {
        guard admits(action.name, connection, messageCount: messageCount) else { return }
        start(action, params: connection.params, for: connection, messageCount: messageCount)
    }

    /// Counts the request; refuses it (false) while stopping or past `simultaneousActions`.
    private func admits(_ name: String, _ connection: Connection, messageCount: Int) -> Bool {
        connection.totalActions += 1
        totalActions += 1
        // (A connection waiting for its handoff is still open and served.)
        if isStopping && connection.state != .open {
            refuse("the server is shutting down", action: name, connection, messageCount: messageCount)
            return false
        }
        if connection.pendingActions >= configuration.simultaneousActions {
            refuse("you have too many pending requests", action: name, connection, messageCount: messageCount)
            return false
        }
        return true
    }

    private func refuse(_ error: String, action name: String, _ connection: Connection, messageCount: Int) {
        ProcessMetrics.counters.actions[actions[name] == nil ? "unknown" : name, default: ActionCounts()].error += 1
        connection.sendActionReply(fields: JSONObject(), error: error, messageCount: messageCount)
    }

    /// Fills in the declared defaults and starts the action (or refuses a missing input).
    private func start(_ action: Action, params: JSONObject, for connection: Connection, messageCount: Int) {
        if action.inputs.isEmpty { return run(action, params: params, for: connection, messageCount: messageCount) }
        var params = params
        for input in action.inputs {
            let value = params[input.name]
            if input.isRequired {
                switch value {
                case nil, .null?, .string("")?:
                    return refuse("Error: \(input.name) is a required parameter for this action",
                                  action: action.name, connection, messageCount: messageCount)
                default: break
                }
            } else if value == nil, let fallback = input.defaultValue {
                params[input.name] = fallback
            }
        }
        run(action, params: params, for: connection, messageCount: messageCount)
    }

    private func run(_ action: Action, params: JSONObject, for connection: Connection, messageCount: Int) {
        let name = action.name
        connection.pendingActions += 1
        pendingActions += 1
        switch action.body {
        case .sync(let run):
            var call = makeCall(params: params, connection: connection)
            let started = Clock.monotonicNanos()
            var failure: String?
            do {
                try run(call)
            } catch {
                failure = Self.failureText(error, action: name, connection: connection)
            }
            finish(call, action: name, error: failure, connection: connection, messageCount: messageCount, started: started)
            // Kept for the next request, unless the action kept a reference to it.
            if spareCall == nil && isKnownUniquelyReferenced(&call) {
                call.clear()
                spareCall = consume call
            }
        case .async(let run):
            let call = makeCall(params: params, connection: connection)
            let started = Clock.monotonicNanos()
            connection.track(call)
            call.task = Task.onLoop { [self, call] in
                var failure: String?
                do {
                    try await run(call)
                } catch {
                    // A cancelled call's reply is not sent: its error is nobody's concern.
                    if !call.isCancelled { failure = Self.failureText(error, action: name, connection: connection) }
                }
                connection.untrack(call)
                call.task = nil
                self.finish(call, action: name, error: failure, connection: connection, messageCount: messageCount, started: started)
            }
        }
    }

    /// Cancels the connection's running actions: it has closed, or got its goodbye, so
    /// their replies would never be sent. Each finishes (and is counted out) as soon as
    /// its code sees the cancellation.
    func cancelActions(of connection: Connection) {
        var next = connection.runningCalls
        while let call = next {
            next = call.nextRunning
            if !call.isCancelled { call.cancel() }
        }
    }

    /// An `ActionError`'s own text; anything else is logged and reported as internal.
    private static func failureText(_ error: any Error, action: String, connection: Connection) -> String {
        if let error = error as? ActionError { return error.description }
        log.error("action.failed", ["action": action, "connection": connection.id.string, "error": "\(error)"])
        return "Error: the server experienced an internal error"
    }

    /// The action named `name`; the last one found is remembered, since clients tend to
    /// call the same action again and again.
    private func lookUpAction(_ name: String) -> Action? {
        if let last = lastAction, last.name == name { return last }
        let found = actions[name]
        if let found { remember(found) }
        return found
    }

    /// Makes `action` the last one found, and `knownLine` its name when a line spelling
    /// it is that action for `RequestParser.parse(_:knownAction:)`: not a verb, not JSON.
    private func remember(_ action: Action) {
        lastAction = action
        knownLineCount = -1
        var name = action.name
        name.withUTF8 { utf8 in
            guard let bytes = utf8.baseAddress, utf8.count > 0, utf8.count <= Self.knownLineCapacity,
                  utf8[0] != UInt8(ascii: "{"), RequestParser.verb(UnsafeRawBufferPointer(utf8)) == nil else { return }
            knownLine.copyMemory(from: bytes, byteCount: utf8.count)
            knownLineCount = utf8.count
        }
    }

    private func makeCall(params: JSONObject, connection: Connection) -> ActionCall {
        if let call = spareCall.take() {
            call.reuse(params: params, connection: connection)
            return call
        }
        return ActionCall(params: params, connection: connection, worker: services)
    }

    private func finish(_ call: ActionCall, action: String, error: String?, connection: Connection, messageCount: Int, started: UInt64) {
        connection.pendingActions -= 1
        pendingActions -= 1
        let elapsed = Clock.monotonicNanos() &- started
        Self.count(action: action, failed: error != nil, nanos: elapsed)
        if logActions {
            let micros = elapsed / 1_000
            log.debug("action", ["action": action, "connection": connection.id.string, "durationUs": String(micros),
                                 "error": error ?? ""])
        }
        if connection.isOpen {
            connection.sendActionReply(fields: call.response, error: error, messageCount: messageCount)
            // (`pendingActionsDrained` has nothing to do unless one of these holds.)
            if connection.pendingActions == 0 && (connection.state == .draining || connection.inputEnded) {
                pendingActionsDrained(connection)
            }
        }
    }

    /// Counts a finished action (`herald_actions_total`, `herald_action_duration_seconds`):
    /// in place in the dictionary's storage, no copy of the histogram.
    private static func count(action: String, failed: Bool, nanos: UInt64) {
        ProcessMetrics.countAction(action, failed: failed, nanos: nanos)
    }
}

extension Connection {
    /// Adds an async call to the connection's running calls.
    func track(_ call: ActionCall) {
        call.nextRunning = runningCalls
        runningCalls?.previousRunning = call
        runningCalls = call
    }

    /// Removes a finished call from the connection's running calls.
    func untrack(_ call: ActionCall) {
        if let previous = call.previousRunning {
            previous.nextRunning = call.nextRunning
        } else if runningCalls === call {
            runningCalls = call.nextRunning
        }
        call.nextRunning?.previousRunning = call.previousRunning
        call.nextRunning = nil
        call.previousRunning = nil
    }

    /// `setSticky(key, .string(text))`, with nothing to do when the param holds `text`
    /// already (a client repeating its action).
    func setSticky(_ key: String, string text: String) {
        if params.hasString(text, forKey: key) { return }
        setSticky(key, .string(text))
    }

    /// Sets a sticky param, keeping the byte count used for the limits.
    func setSticky(_ key: String, _ value: JSON) {
        if let old = params[key] {
            if case .string(let oldText) = old, case .string(let newText) = value, oldText == newText { return }
            paramBytes -= Self.size(key, old)
        }
        params[key] = value
        paramBytes += Self.size(key, value)
    }

    func removeSticky(_ key: String) {
        if let old = params.removeValue(forKey: key) { paramBytes -= Self.size(key, old) }
    }

    /// A param's share of `paramsView`: `"key":value,` as JSON-encoded.
    static func size(_ key: String, _ value: JSON) -> Int {
        if case .string(let text) = value { return encodedSize(key) + encodedSize(text) + 2 }
        var bytes: [UInt8] = []
        JSONWriter.write(value, to: &bytes)
        return encodedSize(key) + bytes.count + 2
    }

    /// The length of `text` as a JSON string: quotes and escapes included (`\u0001` is six).
    nonisolated static func encodedSize(_ text: String) -> Int {
        var size = 2
        for byte in text.utf8 {
            switch byte {
            case 0x08, 0x09, 0x0A, 0x0C, 0x0D, UInt8(ascii: "\""), UInt8(ascii: "\\"): size += 2
            case 0..<0x20: size += 6
            default: size += 1
            }
        }
        return size
    }
}
