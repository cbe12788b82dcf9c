import CHeraldSystem
import Glibc
import HeraldLoop
import HeraldProtocol

/// The channel between a supervisor and the new supervisor it starts for a binary upgrade
/// (`herald upgrade`, SIGUSR2): one end of a SOCK_SEQPACKET socketpair each, so every
/// message is one record, with descriptors attached (DescriptorPassing).
///
/// Messages are JSON objects with a `type`:
/// - new → old `hello` {version, pid}: the first message; the old one answers
///   `welcome` {version} or `refused` {reason} (a version it does not speak, or it cannot
///   be upgraded now). The new one refuses a `welcome` of another version the same way.
/// - new → old `failed` {reason}: the new supervisor gives up (it exits; the old one keeps
///   serving).
/// - new → old `commit` {pid}: its workers serve and it holds the pidfile and the control
///   socket; from here on the old supervisor only retires.
/// - new → old `slot` {index} with one descriptor: the end of a socketpair whose other end
///   the new worker of that slot adopts connections from; the old one hands its worker of
///   that slot over on it (`Supervisor.handOver`).
/// - new → old `done`: every slot was sent; the old supervisor drains whatever is left and
///   exits 0 once its workers have.
public enum UpgradeChannel {
    /// The version both ends must speak.
    public static let version = 1
    /// The variable naming the new supervisor's end of the channel.
    public static let fdVariable = "HERALD_UPGRADE_FD"
    /// The inherited listening sockets, slot by slot: `4,5;6,7` (slots separated by `;`,
    /// a slot's sockets in listener order by `,`).
    public static let listenVariable = "HERALD_UPGRADE_LISTEN_FDS"
    /// The inherited metrics listening socket, when metricsPort is on.
    public static let metricsVariable = "HERALD_UPGRADE_METRICS_FD"
    /// The old supervisor's pid (whose pidfile the new one takes over).
    public static let predecessorVariable = "HERALD_UPGRADE_FROM_PID"

    public struct Failure: Error, CustomStringConvertible, Sendable {
        public let description: String
        public init(_ description: String) { self.description = description }
    }

    /// A socketpair for the channel (close-on-exec, numbered above 10).
    static func makePair() throws(SystemError) -> (Int32, Int32) {
        var pair: [Int32] = [0, 0]
        guard socketpair(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pair) == 0 else {
            throw SystemError("socketpair(SOCK_SEQPACKET)")
        }
        return (herald_move_fd_above(pair[0], 10), herald_move_fd_above(pair[1], 10))
    }

    /// Sends one message (blocking: the records are small, and the peer reads them).
    public static func send(_ fields: [(String, JSON)], on fd: Int32, descriptors: [Int32] = []) throws(SystemError) {
        var bytes: [UInt8] = []
        JSONWriter.write(.object(JSONObject(fields)), to: &bytes)
        _ = try DescriptorPassing.send(on: fd, bytes: bytes, descriptors: descriptors)
    }

    /// One message: its fields and the descriptors that came with it; nil at end of stream.
    /// Throws EAGAIN on a non-blocking socket with nothing to read.
    public static func receive(on fd: Int32) throws(SystemError) -> (message: JSONObject, descriptors: [Int32])? {
        let (bytes, descriptors) = try DescriptorPassing.receive(on: fd, capacity: 4_096)
        if bytes.isEmpty && descriptors.isEmpty { return nil }
        guard case .object(let object)? = try? JSONParser.parse(bytes) else {
            for descriptor in descriptors { close(descriptor) }
            return (JSONObject([("type", .string("unreadable"))]), [])
        }
        return (object, descriptors)
    }

    /// The `refused` reason for a peer's version, or nil when it is this one.
    public static func versionProblem(_ message: JSONObject, peer: String) -> String? {
        let theirs = message["version"]?.numberValue.map { Int($0) }
        guard theirs != version else { return nil }
        return "upgrade channel version mismatch: the \(peer) speaks version \(theirs.map(String.init) ?? "none"), this one \(version); the old supervisor keeps serving"
    }

    /// Child descriptor numbers for `count` descriptors, from 3 upward, avoiding every number
    /// in `taken` (the parent's descriptors being passed), so that no dup2 of the spawn
    /// overwrites a descriptor still to be passed.
    static func childNumbers(count: Int, avoiding taken: Set<Int32>) -> [Int32] {
        var numbers: [Int32] = []
        var candidate: Int32 = 3
        while numbers.count < count {
            if !taken.contains(candidate) { numbers.append(candidate) }
            candidate += 1
        }
        return numbers
    }
}

/// What the new supervisor finds in its environment when it was started by an upgrade.
public struct UpgradeInheritance: Sendable {
    /// Its end of the upgrade channel.
    public let channel: Int32
    /// Each slot's listening sockets, slot 0 first.
    public let slots: [[Int32]]
    public let metricsFD: Int32?
    public let predecessor: pid_t

    /// Reads and removes the variables (nothing started from here inherits them), and
    /// moves the descriptors above 10 with close-on-exec (workers get none of them).
    /// nil when this supervisor was not started by an upgrade.
    public static func takeFromEnvironment(_ environment: [String: String]) throws(UpgradeChannel.Failure) -> UpgradeInheritance? {
        guard let channelText = environment[UpgradeChannel.fdVariable] else { return nil }
        for name in [UpgradeChannel.fdVariable, UpgradeChannel.listenVariable, UpgradeChannel.metricsVariable,
                     UpgradeChannel.predecessorVariable] { unsetenv(name) }
        func move(_ fd: Int32) -> Int32 { herald_move_fd_above(fd, 10) }
        guard let channel = Int32(channelText), channel > 2,
              let predecessor = environment[UpgradeChannel.predecessorVariable].flatMap(pid_t.init),
              let listen = environment[UpgradeChannel.listenVariable] else {
            throw UpgradeChannel.Failure("incomplete upgrade environment (\(UpgradeChannel.fdVariable), \(UpgradeChannel.listenVariable), \(UpgradeChannel.predecessorVariable))")
        }
        var slots: [[Int32]] = []
        for slot in listen.split(separator: ";") {
            let fds = slot.split(separator: ",").compactMap { Int32($0) }
            guard !fds.isEmpty, fds.allSatisfy({ $0 > 2 }) else {
                throw UpgradeChannel.Failure("unreadable \(UpgradeChannel.listenVariable)=\(listen)")
            }
            slots.append(fds.map(move))
        }
        guard !slots.isEmpty else { throw UpgradeChannel.Failure("no listening sockets in \(UpgradeChannel.listenVariable)") }
        let metrics = environment[UpgradeChannel.metricsVariable].flatMap(Int32.init).map(move)
        return UpgradeInheritance(channel: move(channel), slots: slots, metricsFD: metrics, predecessor: predecessor)
    }

    /// The first exchange, before any worker starts: `hello`, then the old supervisor's
    /// answer (within `timeoutMilliseconds`). Throws the reason the upgrade cannot go on
    /// (after telling the old one, when it is a version mismatch on this side).
    public func handshake(timeoutMilliseconds: Int32 = 10_000) throws(UpgradeChannel.Failure) {
        do {
            try UpgradeChannel.send([("type", .string("hello")), ("version", .number(Double(UpgradeChannel.version))),
                                     ("pid", .number(Double(getpid())))], on: channel)
        } catch {
            throw UpgradeChannel.Failure("cannot reach the old supervisor: \(error)")
        }
        var poller = pollfd(fd: channel, events: Int16(POLLIN), revents: 0)
        guard poll(&poller, 1, timeoutMilliseconds) == 1 else {
            throw UpgradeChannel.Failure("the old supervisor did not answer within \(timeoutMilliseconds) ms")
        }
        let answer: (message: JSONObject, descriptors: [Int32])?
        do { answer = try UpgradeChannel.receive(on: channel) } catch {
            throw UpgradeChannel.Failure("cannot read the old supervisor's answer: \(error)")
        }
        guard let (message, descriptors) = answer else { throw UpgradeChannel.Failure("the old supervisor closed the channel") }
        for fd in descriptors { close(fd) }
        switch message["type"]?.stringValue {
        case "welcome":
            if let problem = UpgradeChannel.versionProblem(message, peer: "old supervisor") {
                try? UpgradeChannel.send([("type", .string("refused")), ("reason", .string(problem))], on: channel)
                throw UpgradeChannel.Failure(problem)
            }
        case "refused":
            throw UpgradeChannel.Failure("the old supervisor refused: \(message["reason"]?.stringValue ?? "no reason given")")
        default:
            throw UpgradeChannel.Failure("unexpected answer from the old supervisor: \(message["type"]?.stringValue ?? "none")")
        }
    }
}
