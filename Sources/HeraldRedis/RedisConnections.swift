import HeraldLoop

/// What the bus and the cache need of a command connection: one Redis (`RedisClient`)
/// or a cluster (`RedisClusterClient`, which routes each command by its key's slot).
@LoopActor
public protocol RedisCommandConnection: AnyObject {
    var isReady: Bool { get }
    var acceptsCommands: Bool { get }
    var lastError: String { get }
    var isPublishCongested: Bool { get }
    var publishHighWater: Int { get set }
    var onReady: (@LoopActor () -> Void)? { get set }
    var onPublishDrained: (@LoopActor () -> Void)? { get set }
    func start()
    func stop()
    func flushWrites()
    func send(_ arguments: [[UInt8]], completion: @escaping @LoopActor (Result<RedisReply, RedisError>) -> Void)
    func command(_ arguments: [[UInt8]]) async throws -> RedisReply
    func publish(_ arguments: [[UInt8]], bytes: Int) -> Bool
    /// Whether a `publish` on `channel` would be sent now (its master's connection is up).
    func acceptsPublish(channel: [UInt8]) -> Bool
}

extension RedisCommandConnection {
    /// Sends a command and waits for its reply. An error reply throws `.server`.
    /// The command is written in call order, before the first suspension. When the
    /// waiting task is cancelled this throws `CancellationError` at once (the reply,
    /// when it comes, is ignored).
    public func command(_ arguments: [[UInt8]]) async throws -> RedisReply {
        let waiter = ReplyWaiter()
        return try await withTaskCancellationHandler {
            try await withUnsafeThrowingContinuation { (continuation: UnsafeContinuation<RedisReply, any Error>) in
                waiter.continuation = continuation
                send(arguments) { result in
                    switch result {
                    case .success(.error(let message)): waiter.finish(.failure(RedisError.server(message)))
                    case .success(let reply): waiter.finish(.success(reply))
                    case .failure(let error): waiter.finish(.failure(error))
                    }
                }
                if Task.isCancelled { waiter.finish(.failure(CancellationError())) }
            }
        } onCancel: {
            waiter.cancel()
        }
    }
}

/// What the bus needs of its subscriber: one Redis (`RedisSubscriber`, SUBSCRIBE) or a
/// cluster (`RedisShardedSubscriber`, SSUBSCRIBE on the shard of each channel).
@LoopActor
public protocol RedisSubscriptions: AnyObject {
    var onMessage: (@LoopActor (_ channel: UnsafeRawBufferPointer, _ payload: UnsafeRawBufferPointer) -> Void)? { get set }
    /// Called after the messages of one read were all passed to `onMessage`.
    var onMessagesEnd: (@LoopActor () -> Void)? { get set }
    func start()
    func stop()
    func subscribe(_ channel: String) -> SubscriptionWaiter?
    func unsubscribe(_ channel: String)
    /// Calls `done` once the messages Redis has already sent have all gone to `onMessage`.
    func afterMessagesInFlight(_ done: @escaping @LoopActor () -> Void)
}

extension RedisClient: RedisCommandConnection {
    public func acceptsPublish(channel: [UInt8]) -> Bool { acceptsPublish }
}

@LoopActor
enum RedisConnections {
    /// A command connection for `endpoint`.
    static func commands(_ endpoint: RedisEndpoint, name: String, commandTimeout: Int) -> any RedisCommandConnection {
        if endpoint.isCluster { return RedisClusterClient(endpoint: endpoint, name: name, commandTimeout: commandTimeout) }
        return RedisClient(endpoint: endpoint, name: name, commandTimeout: commandTimeout)
    }

    /// The bus's command connection and subscriber (on a cluster the subscriber follows
    /// the command connection's slot map).
    static func bus(_ endpoint: RedisEndpoint, commandTimeout: Int) -> (any RedisCommandConnection, any RedisSubscriptions) {
        if endpoint.isCluster {
            let router = RedisClusterClient(endpoint: endpoint, name: "bus", commandTimeout: commandTimeout)
            return (router, RedisShardedSubscriber(router: router, commandTimeout: commandTimeout))
        }
        return (RedisClient(endpoint: endpoint, name: "bus", commandTimeout: commandTimeout),
                RedisSubscriber(endpoint: endpoint, name: "subscriber", sharded: false, commandTimeout: commandTimeout))
    }
}
