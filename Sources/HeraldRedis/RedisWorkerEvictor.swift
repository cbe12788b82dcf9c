import HeraldLoop

/// Removes a dead worker from the cluster at once: its members leave every room and it
/// stops counting, instead of lingering until its heartbeat key expires. The supervisor
/// calls it when a worker exits without being told to (a crash, `kill -9`).
@LoopActor
public final class RedisWorkerEvictor {
    private let client: any RedisCommandConnection
    private let prefix: [UInt8]
    private let reapScript = RedisScript(Lua.reap)

    public init(endpoint: RedisEndpoint) {
        client = RedisConnections.commands(endpoint, name: "supervisor", commandTimeout: 2_000)
        prefix = Array(endpoint.busKeyPrefix.utf8)
        client.onReady = { [weak self] in self.map { $0.reapScript.load(on: $0.client) } }
        client.start()
    }

    /// The reap script with the worker to take out of the cluster (its members, its key,
    /// its registry entry), and any other whose heartbeat expired on the way.
    public func evict(workerID: String) {
        reapScript.send(on: client, keys: [prefix + Array("alive".utf8), prefix + Array("rooms".utf8)],
                        arguments: [prefix, Array(workerID.utf8), Array("1".utf8), Array("0".utf8)]) { result in
            switch result {
            case .success(.error(let message)):
                log.warn("redis.evict.failed", ["workerId": workerID, "error": message])
            case .failure(let error):
                log.warn("redis.evict.failed", ["workerId": workerID, "error": "\(error)"])
            case .success:
                log.info("redis.evicted", ["workerId": workerID])
            }
        }
    }

    public func stop() { client.stop() }
}
