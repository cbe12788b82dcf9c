import HeraldLoop
import HeraldProtocol

/// What an action can use of the worker that runs it.
@LoopActor
public final class WorkerServices {
    unowned(unsafe) let worker: Worker  // the worker outlives its services (it holds them)

    init(worker: Worker) { self.worker = worker }

    /// This worker's id (unique per worker process).
    public var serverID: String { worker.serverID }
    /// Milliseconds since the worker started.
    public var uptime: Int { Clock.wallMillis() - worker.startedAt }
    public var cache: any Cache { worker.cache }
    public var configuration: Configuration { worker.configuration }
    /// The documentation of every action, as the `documentation` verb shows it.
    public var documentation: JSON { worker.documentation }

    /// This worker's counts.
    public var stats: JSONObject {
        JSONObject([
            ("connections", .number(Double(worker.connectionCount))),
            ("rooms", .number(Double(worker.membership.roomCount))),
            ("totalActions", .number(Double(worker.totalActions))),
            ("pendingActions", .number(Double(worker.pendingActions))),
        ])
    }

    /// Counts across the cluster (through the room bus).
    public func clusterStats() async throws -> ClusterStats {
        if worker.bus.isLocalOnly {
            return ClusterStats(connections: worker.connectionCount, rooms: worker.membership.roomCount, workers: 1)
        }
        return try await worker.bus.stats()
    }

    /// A uniformly distributed double in [0, 1), from the worker's fast generator.
    /// (Exactly what `Double.random(in: 0..<1, using:)` computes, without its generic
    /// steps: the low 53 bits of one draw, times 2^-53.)
    public func randomUnitInterval() -> Double { Double(worker.random.next() & 0x1F_FFFF_FFFF_FFFF) * 0x1p-53 }

    /// Sends `message` to every member of `room` on every worker, `"from":0`.
    public func broadcast(room: String, message: String) {
        worker.broadcast(room: room, message: message, from: nil)
    }
}
