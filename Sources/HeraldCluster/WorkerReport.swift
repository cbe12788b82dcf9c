import HeraldCore
import HeraldProtocol

/// A line a worker sends its supervisor: `ready` once it accepts, then `stats` every
/// second. JSON, one object per line.
public struct WorkerReport: Sendable, Equatable {
    public enum Kind: String, Sendable { case ready, stats }

    public var kind: Kind
    public var serverID: String
    public var connections: Int
    public var rooms: Int
    public var totalActions: Int
    /// What the worker counted since it started (for `/metrics`).
    public var counters = WorkerCounters()
    /// Whether its Redis clients are connected; nil when it uses no Redis.
    public var redisUp: Bool?
    /// The control protocol the worker speaks (`ControlProtocol.version`); nil from a
    /// worker older than the versioned protocol.
    public var protocolVersion: Int? = ControlProtocol.version
    /// Its handoff counts (connections handed over, drained instead, adopted).
    public var handoff = HandoffCounts()
    /// The Redis node its clients are on (`host:port`, with ` master` when checked by ROLE).
    public var redisNode: String?
    /// What a stopping worker has left to do: its connections plus the goodbyes it has not
    /// yet written (`Worker.stopWork`), falling as it goes; nil while it is not stopping.
    public var stopWork: Int?

    public init(kind: Kind, serverID: String, connections: Int, rooms: Int, totalActions: Int,
                counters: WorkerCounters = WorkerCounters(), redisUp: Bool? = nil, handoff: HandoffCounts = HandoffCounts()) {
        self.handoff = handoff
        self.counters = counters
        self.redisUp = redisUp
        self.kind = kind
        self.serverID = serverID
        self.connections = connections
        self.rooms = rooms
        self.totalActions = totalActions
    }

    public func encoded() -> [UInt8] {
        var out: [UInt8] = []
        JSONWriter.writeObject(JSONObject([
            ("event", .string(kind.rawValue)), ("serverId", .string(serverID)),
            ("connections", .number(Double(connections))), ("rooms", .number(Double(rooms))),
            ("totalActions", .number(Double(totalActions))),
            ("redisUp", redisUp.map(JSON.bool) ?? .null), ("redisNode", redisNode.map(JSON.string) ?? .null),
            ("metrics", counters.asJSON),
            ("protocol", .number(Double(protocolVersion ?? 0))),
            ("handedOver", .number(Double(handoff.handedOver))), ("drained", .number(Double(handoff.drained))),
            ("adopted", .number(Double(handoff.adopted))),
            ("stopWork", stopWork.map { .number(Double($0)) } ?? .null),
        ]), to: &out)
        out.append(UInt8(ascii: "\n"))
        return out
    }

    public init?(line: UnsafeRawBufferPointer) {
        guard case .object(let object)? = try? JSONParser.parse(line),
              let kind = object["event"]?.stringValue.flatMap(Kind.init(rawValue:)),
              let serverID = object["serverId"]?.stringValue else { return nil }
        self.kind = kind
        self.serverID = serverID
        connections = Int(object["connections"]?.numberValue ?? 0)
        rooms = Int(object["rooms"]?.numberValue ?? 0)
        totalActions = Int(object["totalActions"]?.numberValue ?? 0)
        if case .bool(let up)? = object["redisUp"] { redisUp = up }
        redisNode = object["redisNode"]?.stringValue
        counters = WorkerCounters(json: object["metrics"])
        protocolVersion = object["protocol"]?.numberValue.map { Int($0) }
        handoff.handedOver = Int(object["handedOver"]?.numberValue ?? 0)
        handoff.drained = Int(object["drained"]?.numberValue ?? 0)
        handoff.adopted = Int(object["adopted"]?.numberValue ?? 0)
        stopWork = object["stopWork"]?.numberValue.map { Int($0) }
    }
}
