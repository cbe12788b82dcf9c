import Glibc
import HeraldCore
import HeraldLoop
import HeraldRedis

/// Which bus and cache a worker runs on: the configured Redis; else a private
/// redis-server child (when redis-server is installed); else the in-process ones,
/// for exactly one worker.
struct BackendPlan {
    let endpoint: RedisEndpoint?
    let privateRedis: PrivateRedis?
    let runDirectory: String?
    /// Why the in-process backends were chosen (nil when Redis is used).
    let inProcessReason: String?

    /// The URL workers reach the private redis-server at (nil when there is none).
    var privateURL: String? {
        guard let privateRedis else { return nil }
        return "unix://\(privateRedis.socketPath)"
    }

    /// A worker's backends: the configured Redis (the supervisor passes a private one
    /// as HERALD_REDIS_URL), else in-process. A Redis setting that fails (an unreadable
    /// password file at a reload) fails the worker, so that the reload stops and the old
    /// workers keep serving, rather than a worker on rooms of its own.
    static func forWorker(_ configuration: Configuration) throws(ConfigurationError) -> BackendPlan {
        if let endpoint = try RedisEndpoint.from(configuration) {
            return BackendPlan(endpoint: endpoint, privateRedis: nil, runDirectory: nil, inProcessReason: nil)
        }
        return BackendPlan(endpoint: nil, privateRedis: nil, runDirectory: nil, inProcessReason: "no Redis configured")
    }

    /// Chooses before the loop starts (it may start redis-server).
    static func choose(_ configuration: Configuration, mayStartPrivateRedis: Bool) throws(ConfigurationError) -> BackendPlan {
        if let endpoint = try RedisEndpoint.from(configuration) {
            if endpoint.isCluster, case .unreachable(let why) = try RedisClusterProbe.check(endpoint) {
                log.warn("redis.cluster.unreachable", ["redis": endpoint.description, "error": why,
                                                       "action": "starting; the workers keep asking the seeds"])
            }
            return BackendPlan(endpoint: endpoint, privateRedis: nil, runDirectory: nil, inProcessReason: nil)
        }
        guard mayStartPrivateRedis, PrivateRedis.serverPath() != nil else {
            return BackendPlan(endpoint: nil, privateRedis: nil, runDirectory: nil,
                               inProcessReason: "no Redis configured and redis-server is not installed")
        }
        var template = Array("/tmp/herald-\(getpid())-XXXXXX".utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            return BackendPlan(endpoint: nil, privateRedis: nil, runDirectory: nil,
                               inProcessReason: "no Redis configured and no run directory for a private one")
        }
        let directory = String(cString: made)
        do {
            let redis = try PrivateRedis.start(runDirectory: directory)
            var endpoint = redis.endpoint
            endpoint.prefix = configuration.redisPrefix
            log.info("redis.private.started", ["pid": String(redis.pid), "socket": redis.socketPath])
            return BackendPlan(endpoint: endpoint, privateRedis: redis, runDirectory: directory, inProcessReason: nil)
        } catch {
            rmdir(directory)
            return BackendPlan(endpoint: nil, privateRedis: nil, runDirectory: nil,
                               inProcessReason: "no Redis configured and the private redis-server failed: \(error)")
        }
    }

    /// Builds the bus and cache on the loop. `stop` closes the cache's connection.
    @LoopActor
    func make(serverID: String) -> (bus: any RoomBus, cache: any Cache, stop: @LoopActor () -> Void, name: String) {
        guard let endpoint else {
            log.warn("server.backends", ["bus": "in-process", "cache": "in-process", "workers": "1",
                                         "reason": inProcessReason ?? ""])
            return (InProcessBus(), MemoryCache(), {}, "in-process")
        }
        let cache = RedisCache(endpoint: endpoint)
        cache.start()
        // The bus knows the worker by its server id, which the supervisor also knows, so
        // that it can evict a crashed worker's members at once.
        let bus = RedisBus(endpoint: endpoint, workerID: serverID)
        log.info("server.backends", ["bus": "redis", "cache": "redis", "redis": endpoint.description,
                                     "private": privateRedis == nil ? "no" : "yes", "prefix": endpoint.prefix,
                                     "workerId": bus.workerID])
        return (bus, cache, { cache.stop() }, "redis")
    }

    /// After the loop: stops the private redis-server and removes its run directory.
    func finish() {
        guard let privateRedis else { return }
        privateRedis.stop()
        if let runDirectory { rmdir(runDirectory) }
    }
}
