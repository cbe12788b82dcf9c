import HeraldLoop

/// Commands sent before a connection can take them, while one is about to exist (the
/// sentinels are being asked for the master; a cluster's first slot map is being asked
/// for): each waits until `release` sends it, `fail` fails it, or the timeout it was held
/// with passes (it then fails with `.timeout`). A request at start is answered once Redis
/// is reachable instead of refused because the worker was a few milliseconds early.
@LoopActor
final class RedisHeldCommands {
    private final class Held {
        let arguments: [[UInt8]]
        let completion: @LoopActor (Result<RedisReply, RedisError>) -> Void
        var timer: LoopTimer?

        init(arguments: [[UInt8]], completion: @escaping @LoopActor (Result<RedisReply, RedisError>) -> Void) {
            self.arguments = arguments
            self.completion = completion
        }
    }

    private var held: [Held] = []

    func hold(_ arguments: [[UInt8]], timeout: Int, completion: @escaping @LoopActor (Result<RedisReply, RedisError>) -> Void) {
        let command = Held(arguments: arguments, completion: completion)
        command.timer = EventLoop.current.schedule(afterMilliseconds: timeout) { [weak self, command] in
            guard let self, let index = self.held.firstIndex(where: { $0 === command }) else { return }
            self.held.remove(at: index)
            command.completion(.failure(.timeout(timeout)))
        }
        held.append(command)
    }

    /// Hands every held command, oldest first, to `send`.
    func release(to send: (_ arguments: [[UInt8]], _ completion: @escaping @LoopActor (Result<RedisReply, RedisError>) -> Void) -> Void) {
        let commands = take()
        for command in commands { send(command.arguments, command.completion) }
    }

    func fail(_ error: RedisError) {
        for command in take() { command.completion(.failure(error)) }
    }

    private func take() -> [Held] {
        let commands = held
        held = []
        for command in commands { command.timer?.cancel() }
        return commands
    }
}
