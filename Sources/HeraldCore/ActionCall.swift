import HeraldLoop
import HeraldProtocol

/// One running action request: its params, the response it builds, the connection it
/// came from, and the worker's services.
@LoopActor
public final class ActionCall {
    /// The request's params: the connection's sticky params, or exactly a JSON request's
    /// params, with declared defaults filled in.
    @exclusivity(unchecked) public private(set) var params: JSONObject
    /// Fields of the reply, in the order they are set.
    @exclusivity(unchecked) public var response = JSONObject()
    /// Appends a field to the reply without looking for the key (the caller guarantees
    /// it is new): `response.append` from another module costs a run-time exclusivity
    /// check (~80 instructions) that this method, compiled here, does not.
    public func appendResponse(_ key: String, _ value: JSON) {
        response.append(key, value)
    }
    /// The worker's cache, rooms, clock and identity.
    public let worker: WorkerServices
    /// The connection; nil only while the call waits in the worker's pool.
    @exclusivity(unchecked) private var client: Connection?

    /// True once the connection that asked has closed (the client left, was dropped, or
    /// got its goodbye): nobody will read the reply, so stop as soon as you can. The
    /// action's task is cancelled at the same moment, so `call.sleep`, the cache and
    /// other awaits return at once (the cache by throwing `CancellationError`).
    @exclusivity(unchecked) public private(set) var isCancelled = false
    /// An async action's task, while it runs.
    @exclusivity(unchecked) var task: Task<Void, Never>?
    /// The connection's other running async calls (an intrusive list, no allocation).
    @exclusivity(unchecked) var nextRunning: ActionCall?
    unowned(unsafe) var previousRunning: ActionCall?

    init(params: JSONObject, connection: Connection, worker: WorkerServices) {
        self.params = params
        self.client = connection
        self.worker = worker
    }

    /// Readies a pooled call for another request (the worker reuses calls nobody else
    /// holds, keeping the response's storage).
    func reuse(params: JSONObject, connection: Connection) {
        self.params = params
        self.client = connection
    }

    /// Lets go of a finished call's request, keeping its storage.
    func clear() {
        params = JSONObject()
        client = nil
        isCancelled = false
        response.removeAll(keepingCapacity: true)
    }

    /// Marks the call cancelled and cancels its task.
    func cancel() {
        isCancelled = true
        task?.cancel()
    }

    /// Throws `CancellationError` once the call is cancelled (see `isCancelled`).
    public func checkCancellation() throws {
        if isCancelled { throw CancellationError() }
    }

    /// The connection that asked.
    public var connection: ConnectionDetails {
        guard let client else { preconditionFailure("ActionCall used after its action finished") }
        return client.details
    }

    /// A param as text (numbers are written as JSON would write them).
    public func string(_ name: String) -> String? {
        switch params[name] {
        case .string(let text)?: return text
        case .number(let number)?:
            var bytes: [UInt8] = []
            JSONWriter.writeNumber(number, to: &bytes)
            return String(decoding: bytes, as: UTF8.self)
        case .bool(let flag)?: return flag ? "true" : "false"
        default: return nil
        }
    }

    /// A numeric param, from a number or a numeric string.
    public func number(_ name: String) -> Double? { params[name]?.numberValue }

    /// Waits without blocking the worker; returns early, at once, when the call is
    /// cancelled (check `isCancelled` after it).
    public func sleep(milliseconds: Int) async { await EventLoop.current.sleep(milliseconds: milliseconds) }
}

/// What an action may know of the connection that called it.
public struct ConnectionDetails: Sendable {
    public let id: String
    public let remoteIP: String
    public let remotePort: Int
    public let connectedAt: Int
}
