/// Which master serves each of the 16384 slots, from `CLUSTER SHARDS` (Redis 7) or
/// `CLUSTER SLOTS`, updated slot by slot by `MOVED` redirects.
public struct RedisSlotMap: Sendable, Equatable {
    /// Masters in the order first seen; `owners[slot]` indexes it (`none` when unserved).
    public private(set) var masters: [RedisNode] = []
    /// Every node the map names (masters and replicas), for the next discovery.
    public private(set) var knownNodes: [RedisNode] = []
    private var owners: [UInt16]
    static let none: UInt16 = .max

    public init() { owners = Array(repeating: Self.none, count: RedisSlots.count) }

    public func master(forSlot slot: Int) -> RedisNode? {
        let owner = owners[slot]
        return owner == Self.none ? nil : masters[Int(owner)]
    }

    /// Slots with a master.
    public var coveredSlots: Int { owners.reduce(0) { $0 + ($1 == Self.none ? 0 : 1) } }

    /// Hands `slots` to `node` (added as a master when new).
    public mutating func assign(_ slots: ClosedRange<Int>, to node: RedisNode) {
        guard slots.lowerBound >= 0, slots.upperBound < RedisSlots.count else { return }
        let index: Int
        if let known = masters.firstIndex(of: node) {
            index = known
        } else {
            masters.append(node)
            index = masters.count - 1
        }
        if !knownNodes.contains(node) { knownNodes.append(node) }
        for slot in slots { owners[slot] = UInt16(index) }
    }

    private mutating func noteNode(_ node: RedisNode) {
        if !knownNodes.contains(node) { knownNodes.append(node) }
    }

    /// Drops masters that own no slot any more (after redirects moved them all away).
    public mutating func compact() {
        var used = Set<UInt16>(owners)
        used.remove(Self.none)
        guard used.count < masters.count else { return }
        var renumber: [UInt16] = Array(repeating: Self.none, count: masters.count)
        var kept: [RedisNode] = []
        for (index, node) in masters.enumerated() where used.contains(UInt16(index)) {
            renumber[index] = UInt16(kept.count)
            kept.append(node)
        }
        for slot in 0..<owners.count where owners[slot] != Self.none { owners[slot] = renumber[Int(owners[slot])] }
        masters = kept
    }

    /// The map in a `CLUSTER SHARDS` reply: per shard, `slots` (start, end pairs) and
    /// `nodes` (maps with `ip`/`endpoint`, `port`, `role`, `health`). The shard's master
    /// is its node with role master that is online (else any with role master).
    public static func fromShards(_ reply: RedisReply) -> RedisSlotMap? {
        guard case .array(let shards) = reply else { return nil }
        var map = RedisSlotMap()
        for shard in shards {
            guard let fields = shard.fields, let slots = fields["slots"]?.array, let nodes = fields["nodes"]?.array else { return nil }
            var master: RedisNode?
            var masterOnline = false
            for entry in nodes {
                guard let node = entry.fields, let address = Self.node(node) else { continue }
                map.noteNode(address)
                let online = node["health"]?.text.map { $0 == "online" } ?? true
                if node["role"]?.text == "master", master == nil || (!masterOnline && online) {
                    master = address
                    masterOnline = online
                }
            }
            guard let master else { continue }
            var index = 0
            while index + 1 < slots.count {
                guard let start = slots[index].integer, let end = slots[index + 1].integer, start <= end else { return nil }
                map.assign(start...end, to: master)
                index += 2
            }
        }
        return map
    }

    /// The map in a `CLUSTER SLOTS` reply: [start, end, [ip, port, id…] master, replicas…]….
    public static func fromSlots(_ reply: RedisReply) -> RedisSlotMap? {
        guard case .array(let ranges) = reply else { return nil }
        var map = RedisSlotMap()
        for range in ranges {
            guard let items = range.array, items.count >= 3, let start = items[0].integer, let end = items[1].integer,
                  start <= end else { return nil }
            var nodes: [RedisNode] = []
            for item in items[2...] {
                guard let parts = item.array, parts.count >= 2, let host = parts[0].text, let port = parts[1].integer else { continue }
                nodes.append(RedisNode(host: host, port: port))
            }
            guard let master = nodes.first else { continue }
            for node in nodes { map.noteNode(node) }
            map.assign(start...end, to: master)
        }
        return map
    }

    private static func node(_ fields: [String: RedisReply]) -> RedisNode? {
        guard let port = fields["port"]?.integer ?? fields["tls-port"]?.integer else { return nil }
        var host = fields["endpoint"]?.text ?? ""
        if host.isEmpty || host == "?" { host = fields["ip"]?.text ?? "" }
        guard !host.isEmpty else { return nil }
        return RedisNode(host: host, port: port)
    }
}

/// A `MOVED <slot> <host>:<port>` or `ASK <slot> <host>:<port>` error reply.
public struct RedisRedirect: Sendable, Equatable {
    public enum Kind: Sendable { case moved, ask }
    public var kind: Kind
    public var slot: Int
    public var node: RedisNode

    public init(kind: Kind, slot: Int, node: RedisNode) {
        self.kind = kind
        self.slot = slot
        self.node = node
    }

    public static func parse(_ message: String) -> RedisRedirect? {
        let parts = message.split(separator: " ")
        guard parts.count == 3 else { return nil }
        let kind: Kind
        switch parts[0] {
        case "MOVED": kind = .moved
        case "ASK": kind = .ask
        default: return nil
        }
        guard let slot = Int(parts[1]), (0..<RedisSlots.count).contains(slot),
              let colon = parts[2].lastIndex(of: ":"), let port = Int(parts[2][parts[2].index(after: colon)...]),
              (1...65_535).contains(port) else { return nil }
        var host = parts[2][..<colon]
        if host.hasPrefix("[") && host.hasSuffix("]") { host = host.dropFirst().dropLast() }
        guard !host.isEmpty else { return nil }
        return RedisRedirect(kind: kind, slot: slot, node: RedisNode(host: String(host), port: port))
    }
}

extension RedisReply {
    /// A flat [name, value, …] array (how RESP2 carries a map) as a dictionary.
    var fields: [String: RedisReply]? {
        guard case .array(let items) = self, items.count % 2 == 0 else { return nil }
        var out: [String: RedisReply] = [:]
        var index = 0
        while index + 1 < items.count {
            guard let name = items[index].text else { return nil }
            out[name] = items[index + 1]
            index += 2
        }
        return out
    }
}
