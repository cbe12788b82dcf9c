/// The isolation domain of the process's event loop.
///
/// Every piece of worker state (connections, rooms, actions in flight) is isolated to
/// this global actor, whose executor *is* the epoll loop thread: code on it needs no
/// locks, and tasks started on it never hop to another thread.
@globalActor
public actor LoopActor {
    public static let shared = LoopActor()

    public nonisolated var unownedExecutor: UnownedSerialExecutor {
        EventLoop.current.asUnownedSerialExecutor()
    }

    /// Runs `operation` as isolated to the loop; traps unless called on the loop thread.
    /// (Checked by comparing threads: C callbacks — hiredis, OpenSSL — come through here
    /// once per event, and the concurrency runtime's own check costs far more.)
    public static func assumeIsolated<T>(_ operation: @LoopActor () throws -> T) rethrows -> T {
        typealias Unisolated = () throws -> T
        precondition(EventLoop.current.isLoopThread, "LoopActor.assumeIsolated called off the event loop thread")
        return try withoutActuallyEscaping(operation) { isolated in
            try unsafeBitCast(isolated, to: Unisolated.self)()
        }
    }
}

extension Task where Failure == Never {
    /// Starts a task on the event loop: isolated to it and preferring it as the task
    /// executor, so nonisolated async calls made by the task stay on the loop too.
    @discardableResult
    public static func onLoop(_ body: sending @escaping @LoopActor () async -> Success) -> Task<Success, Never> {
        Task(executorPreference: EventLoop.current, operation: body)
    }
}
