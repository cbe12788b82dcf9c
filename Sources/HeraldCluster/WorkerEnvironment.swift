import Glibc

/// What a supervisor tells the workers it starts, through their environment.
public struct WorkerEnvironment: Sendable, Equatable {
    /// The worker's slot, 0 ..< workers.
    public var index: Int
    /// The inherited listening sockets, in the supervisor's listener order.
    public var listenFDs: [Int32]
    /// The worker's end of its channel to the supervisor.
    public var controlFD: Int32
    public var supervisorPID: pid_t

    public static let controlFDNumber: Int32 = 3
    public static let firstListenFDNumber: Int32 = 4

    public init(index: Int, listenFDs: [Int32], controlFD: Int32, supervisorPID: pid_t) {
        self.index = index
        self.listenFDs = listenFDs
        self.controlFD = controlFD
        self.supervisorPID = supervisorPID
    }

    /// The variables to give a worker.
    public var variables: [String: String?] {
        [
            "HERALD_WORKER_INDEX": String(index),
            "HERALD_LISTEN_FDS": listenFDs.map(String.init).joined(separator: ","),
            "HERALD_CONTROL_FD": String(controlFD),
            "HERALD_SUPERVISOR_PID": String(supervisorPID),
        ]
    }

    /// Reads the worker's environment; nil when this process was not started as a worker.
    public static func fromProcess(_ environment: [String: String]) -> WorkerEnvironment? {
        guard let index = environment["HERALD_WORKER_INDEX"].flatMap(Int.init),
              let fds = environment["HERALD_LISTEN_FDS"],
              let control = environment["HERALD_CONTROL_FD"].flatMap(Int32.init),
              let supervisor = environment["HERALD_SUPERVISOR_PID"].flatMap(Int32.init) else { return nil }
        let listen = fds.split(separator: ",").compactMap { Int32($0) }
        guard !listen.isEmpty else { return nil }
        return WorkerEnvironment(index: index, listenFDs: listen, controlFD: control, supervisorPID: supervisor)
    }
}
