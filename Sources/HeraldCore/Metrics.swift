import HeraldLoop
import HeraldProtocol

/// Why a connection closed, as counted in `herald_connections_closed_total{reason}`: a
/// small fixed set (never the free text of the log line).
public enum CloseReason: Int, CaseIterable, Sendable {
    /// The client closed (or reset) its side.
    case client
    /// A goodbye: `quit`/`exit`, a break character.
    case goodbye
    /// lineTimeout, idleTimeout, halfClosedWaitLimit.
    case timeout
    /// The client did not read its output (maxOutputBytes, outputStallTimeout).
    case overflow
    /// A socket, TLS or file error.
    case error
    /// The server stopped (shutdown, reload, scale-down).
    case shutdown

    public var label: String {
        switch self {
        case .client: "client"
        case .goodbye: "goodbye"
        case .timeout: "timeout"
        case .overflow: "overflow"
        case .error: "error"
        case .shutdown: "shutdown"
        }
    }

    /// The reason of a close from the text its log line gives.
    public static func classify(_ text: String) -> CloseReason {
        if text == "client closed" || text == "connection reset" || text == "break-character" { return text == "break-character" ? .goodbye : .client }
        if text.hasSuffix(" requested") { return .goodbye }
        if text == "server shutdown" { return .shutdown }
        if text.hasPrefix("idle for") || text.hasPrefix("line not completed") || text.hasPrefix("client closed; replies still owed") {
            return .timeout
        }
        if text.hasPrefix("output ") || text.hasPrefix("a ") && text.contains("maxOutputBytes") { return .overflow }
        return .error
    }
}

/// A histogram with fixed buckets (seconds), counted in nanoseconds: one short scan and
/// two additions per observation, no allocation.
public struct DurationHistogram: Sendable, Equatable {
    /// Upper bounds in seconds (the `le` labels); `+Inf` is implied.
    public static let bounds: [Double] = [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
    static let nanoBounds: [UInt64] = bounds.map { UInt64($0 * 1e9) }

    /// Observations per bucket, not cumulative; the last one is over every bound.
    public var buckets: [Int]
    public var sumNanos: Int = 0
    public var count: Int = 0

    public init() { buckets = [Int](repeating: 0, count: Self.bounds.count + 1) }

    public mutating func observe(nanos: UInt64) {
        buckets[Self.bucketIndex(nanos: nanos)] += 1
        sumNanos &+= Int(truncatingIfNeeded: nanos)
        count += 1
    }

    /// The bucket of an observation: the first bound it does not exceed. Literal
    /// bounds (`bounds` in nanoseconds; a test checks they agree): reading the static
    /// array costs a `swift_once` per request.
    @inline(__always)
    static func bucketIndex(nanos n: UInt64) -> Int {
        if n <= 100_000 { return 0 }
        if n <= 500_000 { return 1 }
        if n <= 1_000_000 { return 2 }
        if n <= 2_500_000 { return 3 }
        if n <= 5_000_000 { return 4 }
        if n <= 10_000_000 { return 5 }
        if n <= 25_000_000 { return 6 }
        if n <= 50_000_000 { return 7 }
        if n <= 100_000_000 { return 8 }
        if n <= 250_000_000 { return 9 }
        if n <= 500_000_000 { return 10 }
        if n <= 1_000_000_000 { return 11 }
        if n <= 2_500_000_000 { return 12 }
        if n <= 5_000_000_000 { return 13 }
        if n <= 10_000_000_000 { return 14 }
        return 15
    }

    public static func + (a: DurationHistogram, b: DurationHistogram) -> DurationHistogram {
        var sum = a
        for index in sum.buckets.indices where index < b.buckets.count { sum.buckets[index] += b.buckets[index] }
        sum.sumNanos &+= b.sumNanos
        sum.count += b.count
        return sum
    }

    var asJSON: JSON {
        .object(JSONObject([("b", .array(buckets.map { .number(Double($0)) })), ("sum", .number(Double(sumNanos))),
                            ("n", .number(Double(count)))]))
    }

    init(json: JSON?) {
        self.init()
        guard case .object(let object)? = json else { return }
        if case .array(let values)? = object["b"], values.count == buckets.count {
            buckets = values.map { Int($0.numberValue ?? 0) }
        }
        sumNanos = Int(object["sum"]?.numberValue ?? 0)
        count = Int(object["n"]?.numberValue ?? 0)
    }
}

/// The counts of one action.
public struct ActionCounts: Sendable, Equatable {
    public var ok = 0
    public var error = 0
    public var duration = DurationHistogram()
    public init() {}

    mutating func record(failed: Bool, nanos: UInt64) {
        if failed { error += 1 } else { ok += 1 }
        duration.observe(nanos: nanos)
    }
}

/// What a worker process has counted since it started, for `/metrics`. Plain integers
/// changed on the loop thread; the worker reports them to its supervisor every second.
public struct WorkerCounters: Sendable, Equatable {
    public var connectionsOpened = 0
    public var connectionsClosed = [Int](repeating: 0, count: CloseReason.allCases.count)
    /// By action name: registered actions only, and `unknown` for the rest.
    public var actions: [String: ActionCounts] = [:]
    public var says = 0
    public var chatDeliveries = 0
    public var slowConsumerDisconnects = 0
    public var redisReconnects = 0
    public var redisCommandDuration = DurationHistogram()

    public init() {}

    public static func + (a: WorkerCounters, b: WorkerCounters) -> WorkerCounters {
        var sum = a
        sum.connectionsOpened += b.connectionsOpened
        for index in sum.connectionsClosed.indices where index < b.connectionsClosed.count {
            sum.connectionsClosed[index] += b.connectionsClosed[index]
        }
        for (name, counts) in b.actions {
            var total = sum.actions[name] ?? ActionCounts()
            total.ok += counts.ok
            total.error += counts.error
            total.duration = total.duration + counts.duration
            sum.actions[name] = total
        }
        sum.says += b.says
        sum.chatDeliveries += b.chatDeliveries
        sum.slowConsumerDisconnects += b.slowConsumerDisconnects
        sum.redisReconnects += b.redisReconnects
        sum.redisCommandDuration = sum.redisCommandDuration + b.redisCommandDuration
        return sum
    }

    public var asJSON: JSON {
        var actionsObject = JSONObject()
        for (name, counts) in actions.sorted(by: { $0.key < $1.key }) {
            actionsObject[name] = .object(JSONObject([("ok", .number(Double(counts.ok))), ("error", .number(Double(counts.error))),
                                                      ("d", counts.duration.asJSON)]))
        }
        return .object(JSONObject([
            ("opened", .number(Double(connectionsOpened))),
            ("closed", .array(connectionsClosed.map { .number(Double($0)) })),
            ("actions", .object(actionsObject)),
            ("say", .number(Double(says))), ("deliveries", .number(Double(chatDeliveries))),
            ("slow", .number(Double(slowConsumerDisconnects))), ("redisReconnects", .number(Double(redisReconnects))),
            ("redis", redisCommandDuration.asJSON),
        ]))
    }

    public init(json: JSON?) {
        self.init()
        guard case .object(let object)? = json else { return }
        func int(_ key: String) -> Int { Int(object[key]?.numberValue ?? 0) }
        connectionsOpened = int("opened")
        if case .array(let values)? = object["closed"] {
            for (index, value) in values.enumerated() where index < connectionsClosed.count {
                connectionsClosed[index] = Int(value.numberValue ?? 0)
            }
        }
        if case .object(let actionsObject)? = object["actions"] {
            for (name, value) in actionsObject {
                guard case .object(let fields) = value else { continue }
                var counts = ActionCounts()
                counts.ok = Int(fields["ok"]?.numberValue ?? 0)
                counts.error = Int(fields["error"]?.numberValue ?? 0)
                counts.duration = DurationHistogram(json: fields["d"])
                actions[name] = counts
            }
        }
        says = int("say")
        chatDeliveries = int("deliveries")
        slowConsumerDisconnects = int("slow")
        redisReconnects = int("redisReconnects")
        redisCommandDuration = DurationHistogram(json: object["redis"])
    }
}

/// This process's counters (one worker per process).
@LoopActor
public enum ProcessMetrics {
    /// Read through `snapshot` (it adds the counts of the action counted last).
    @exclusivity(unchecked) public static var counters = WorkerCounters()
    /// The counts of the action finished last, kept apart from `counters.actions` until
    /// another action finishes or a snapshot is taken: clients call the same action again
    /// and again, and this spares a dictionary lookup (string hashing) per request.
    @exclusivity(unchecked) private static var recentAction = ""
    @exclusivity(unchecked) private static var recentCounts = ActionCounts()

    /// Counts a finished action (`herald_actions_total`, `herald_action_duration_seconds`).
    public static func countAction(_ name: String, failed: Bool, nanos: UInt64) {
        if name != recentAction {
            foldRecentAction()
            recentAction = name
        }
        recentCounts.record(failed: failed, nanos: nanos)
    }

    private static func foldRecentAction() {
        guard !recentAction.isEmpty, recentCounts.ok + recentCounts.error > 0 else { return }
        var total = counters.actions[recentAction] ?? ActionCounts()
        total.ok += recentCounts.ok
        total.error += recentCounts.error
        total.duration = total.duration + recentCounts.duration
        counters.actions[recentAction] = total
        recentCounts = ActionCounts()
    }

    /// Everything counted so far.
    public static var snapshot: WorkerCounters {
        foldRecentAction()
        return counters
    }
    /// Redis clients this process runs, and how many of them are connected now.
    public static var redisClients = 0
    public static var redisClientsReady = 0
    /// The node each connected Redis client is on (client name → `host:port[ role]`), for `herald status`.
    public static var redisNodes: [String: String] = [:]
    /// One line for `herald status`: the node all clients are on, else each client's
    /// (`client=node`); a cluster's per-node clients (named `<client>@<node>`) show as
    /// their node (and role) alone, so a cluster reads as its masters' list.
    public static var redisNodeSummary: String? {
        guard !redisNodes.isEmpty else { return nil }
        let distinct = Set(redisNodes.values)
        if distinct.count == 1, redisNodes.count == redisClients { return distinct.first }
        let named = Set(redisNodes.map { client, node in
            let address = node.split(separator: " ", maxSplits: 1).first.map(String.init) ?? node
            return client.hasSuffix("@" + address) ? node : "\(client)=\(node)"
        })
        return named.sorted().joined(separator: ", ")
    }

    /// nil without Redis; else whether every Redis client is connected.
    public static var redisUp: Bool? { redisClients == 0 ? nil : redisClientsReady == redisClients }
}

/// The Prometheus text exposition format (0.0.4).
public enum PrometheusText {
    /// A label value escaped as the format wants: backslash, double quote and newline.
    public static func escapeLabelValue(_ value: String) -> String {
        var out = ""
        out.reserveCapacity(value.utf8.count)
        for character in value.unicodeScalars {
            switch character {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.unicodeScalars.append(character)
            }
        }
        return out
    }

    /// HELP text escaped as the format wants: backslash and newline.
    public static func escapeHelp(_ value: String) -> String {
        var out = ""
        for character in value.unicodeScalars {
            switch character {
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            default: out.unicodeScalars.append(character)
            }
        }
        return out
    }

    /// A number as the format writes it (integers without a fraction; +Inf, -Inf, NaN).
    public static func format(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value.isInfinite { return value > 0 ? "+Inf" : "-Inf" }
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return "\(value)"
    }

    /// Accumulates families: `# HELP`, `# TYPE`, then each sample.
    public struct Writer {
        public private(set) var text = ""
        public init() {}

        public mutating func family(_ name: String, type: String, help: String) {
            text += "# HELP \(name) \(escapeHelp(help))\n"
            text += "# TYPE \(name) \(type)\n"
        }

        public mutating func sample(_ name: String, _ value: Double) {
            sample(name, labels: [], value)
        }

        public mutating func sample(_ name: String, _ labels: KeyValuePairs<String, String>, _ value: Double) {
            sample(name, labels: labels.map { ($0.key, $0.value) }, value)
        }

        public mutating func sample(_ name: String, labels: [(String, String)], _ value: Double) {
            text += name
            if !labels.isEmpty {
                text += "{"
                text += labels.map { "\($0.0)=\"\(escapeLabelValue($0.1))\"" }.joined(separator: ",")
                text += "}"
            }
            text += " \(format(value))\n"
        }

        /// A histogram's `_bucket` (cumulative, with `+Inf`), `_sum` (seconds) and `_count`.
        public mutating func histogram(_ name: String, labels: [(String, String)], _ histogram: DurationHistogram) {
            var cumulative = 0
            for (index, bound) in DurationHistogram.bounds.enumerated() {
                cumulative += histogram.buckets[index]
                sample(name + "_bucket", labels: labels + [("le", format(bound))], Double(cumulative))
            }
            sample(name + "_bucket", labels: labels + [("le", "+Inf")], Double(histogram.count))
            sample(name + "_sum", labels: labels, Double(histogram.sumNanos) / 1e9)
            sample(name + "_count", labels: labels, Double(histogram.count))
        }
    }
}
