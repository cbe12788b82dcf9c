import HeraldLoop

/// Removes a dead worker from the cluster at once: its members leave every room and it
/// stops counting, instead of lingering until its heartbeat key expires. The supervisor
/// calls it when a worker exits without being told to (a crash, `kill -9`).
@LoopActor
public final class RedisWorkerEvictor {
    private let client: any RedisCommandConnection
    private let prefix: [UInt8]

    public init(endpoint: RedisEndpoint) {
        client = RedisConnections.commands(endpoint, name: "supervisor", commandTimeout: 2_000)
        prefix = Array(endpoint.busKeyPrefix.utf8)
        client.start()
    }

    public func evict(workerID: String) {
        client.send([Array("EVAL".utf8), Array(Lua.reap.utf8), Array("2".utf8), prefix + Array("workers".utf8),
                     prefix + Array("rooms".utf8), prefix, Array(workerID.utf8), Array("1".utf8)]) { result in
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
