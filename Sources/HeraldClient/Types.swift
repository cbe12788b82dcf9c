import HeraldProtocol

/// How a `HeraldClient` connects and behaves.
public struct HeraldClientOptions: Sendable {
    /// Opens the byte stream: `.tcp` (the default), or `.tls(TLSClientOptions)`.
    public var connector: HeraldConnector
    /// Bound on opening the connection and receiving the welcome line.
    public var connectTimeout: Duration
    /// The timeout of a request that names none.
    public var requestTimeout: Duration
    /// Reconnect automatically after a server goodbye or a dropped connection; nil: never.
    public var reconnect: ReconnectPolicy?
    /// The longest reply line accepted; a longer one ends the connection.
    public var maxReplyBytes: Int

    public init(connector: HeraldConnector = .tcp,
                connectTimeout: Duration = .seconds(5),
                requestTimeout: Duration = .seconds(30),
                reconnect: ReconnectPolicy? = nil,
                maxReplyBytes: Int = 64 << 20) {
        self.connector = connector
        self.connectTimeout = connectTimeout
        self.requestTimeout = requestTimeout
        self.reconnect = reconnect
        self.maxReplyBytes = maxReplyBytes
    }
}

/// Exponential backoff for automatic reconnects: `initialDelay`, then times
/// `multiplier` after each failed attempt, at most `maxDelay`.
public struct ReconnectPolicy: Sendable {
    public var initialDelay: Duration
    public var maxDelay: Duration
    public var multiplier: Double
    /// Attempts per outage before giving up (the client then ends for good); nil: forever.
    public var maxAttempts: Int?

    public init(initialDelay: Duration = .milliseconds(100), maxDelay: Duration = .seconds(5),
                multiplier: Double = 2, maxAttempts: Int? = nil) {
        self.initialDelay = initialDelay
        self.maxDelay = maxDelay
        self.multiplier = multiplier
        self.maxAttempts = maxAttempts
    }

    public static let standard = ReconnectPolicy()
}

/// The server's welcome line: `{"welcome":…,"room":…,"context":"api"}`.
public struct Welcome: Sendable, Equatable {
    public let message: String
    /// The room the connection joined on connect (nil when the server has none).
    public let room: String?
    public let raw: JSONObject

    init?(_ object: JSONObject) {
        guard let message = object["welcome"]?.stringValue else { return nil }
        self.message = message
        self.room = object["room"]?.stringValue
        self.raw = object
    }
}

/// A chat line from another member of a room (context `user`).
public struct ChatMessage: Sendable, Equatable {
    public let message: String
    public let room: String
    /// The sender's connection id; `"0"` for a server broadcast.
    public let from: String
    /// Milliseconds since the epoch.
    public let sentAt: Int
    public let raw: JSONObject

    /// True for a broadcast from the server (an action or an operator), `"from":0`.
    public var isFromServer: Bool { raw["from"] == .number(0) }

    init(_ object: JSONObject) {
        message = object["message"]?.stringValue ?? ""
        room = object["room"]?.stringValue ?? ""
        switch object["from"] {
        case .string(let s)?: from = s
        case .number(let d)?: from = d == d.rounded() && abs(d) < 1e15 ? String(Int(d)) : String(d)
        default: from = ""
        }
        sentAt = object["sentAt"]?.numberValue.map { Int($0) } ?? 0
        raw = object
    }
}

/// `detailsView`'s data.
public struct ConnectionDetails: Sendable, Equatable {
    public let id: String
    public let remoteIP: String
    public let remotePort: Int
    public let params: JSONObject
    public let connectedAt: Int
    /// The current room (the first joined and still held), nil when in none.
    public let room: String?
    public let rooms: [String]
    public let totalActions: Int
    public let pendingActions: Int
    public let raw: JSONObject

    init(_ data: JSONObject) {
        id = data["id"]?.stringValue ?? ""
        remoteIP = data["remoteIP"]?.stringValue ?? ""
        remotePort = data["remotePort"]?.numberValue.map { Int($0) } ?? 0
        params = data["params"]?.objectValue ?? JSONObject()
        connectedAt = data["connectedAt"]?.numberValue.map { Int($0) } ?? 0
        room = data["room"]?.stringValue
        rooms = data["rooms"]?.arrayValue?.compactMap(\.stringValue) ?? []
        totalActions = data["totalActions"]?.numberValue.map { Int($0) } ?? 0
        pendingActions = data["pendingActions"]?.numberValue.map { Int($0) } ?? 0
        raw = data
    }
}

/// `roomView`'s data.
public struct RoomInfo: Sendable, Equatable {
    public let room: String
    /// Member connection ids with their join times (ms since the epoch), in the server's order.
    public let members: [(id: String, joinedAt: Int)]
    public let membersCount: Int
    public let raw: JSONObject

    init(_ data: JSONObject) {
        room = data["room"]?.stringValue ?? ""
        members = (data["members"]?.objectValue ?? JSONObject()).map { entry in
            (id: entry.key, joinedAt: entry.value.objectValue?["joinedAt"]?.numberValue.map { Int($0) } ?? 0)
        }
        membersCount = data["membersCount"]?.numberValue.map { Int($0) } ?? members.count
        raw = data
    }

    public static func == (a: RoomInfo, b: RoomInfo) -> Bool { a.raw == b.raw }
}

/// What happens on the connection, as the JS client's events.
public enum HeraldEvent: Sendable {
    /// The welcome line of a (re)opened connection.
    case welcome(Welcome)
    /// A chat line from another member (also delivered on `messages`).
    case say(ChatMessage)
    /// A transport error, an unreadable line, or an error the server sent on its own.
    case error(HeraldClientError)
    /// A request got no reply in time; it failed with `.timedOut`.
    case timeout(request: String, messageCount: Int)
    /// The server said goodbye (`"quit requested"`, `"server shutdown"`, …).
    case goodbye(reason: String)
    /// The connection ended. `willReconnect`: the reconnect policy takes over.
    case end(reason: String, willReconnect: Bool)
    /// Attempt `attempt` to reconnect starts after `delay`.
    case reconnecting(attempt: Int, delay: Duration)
    /// Reconnected; rooms and sticky params are restored.
    case reconnected(Welcome)
    /// Any other line with context `api` (a keep-alive, for instance).
    case api(JSONObject)
}

/// Everything a client call throws.
public enum HeraldClientError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The connection could not be opened (refused, unresolvable, no welcome in time).
    case connectFailed(String)
    /// The TLS handshake failed: the server's certificate was rejected, the handshake
    /// failed or timed out, or the TLS options cannot be used.
    case tls(HeraldTLSError)
    /// The action's reply has an `"error"`; `reply` is the whole reply line.
    case actionFailed(message: String, reply: JSONObject)
    /// A verb was refused: `status` is the server's reason (e.g. "connection already in this room").
    case refused(status: String, reply: JSONObject)
    /// No reply within the timeout. A later reply to it is dropped.
    case timedOut(request: String, messageCount: Int, after: Duration)
    /// The connection ended before the reply came.
    case connectionClosed(reason: String)
    /// Not connected: disconnected, or reconnecting.
    case notConnected
    /// A request this client does not send (a line break in it, an empty line, `file`, …).
    case invalidRequest(String)
    /// The server sent something this client cannot read.
    case badReply(String)
    /// The calling task was cancelled.
    case cancelled

    /// The reply line, for `.actionFailed` and `.refused`.
    public var reply: JSONObject? {
        switch self {
        case .actionFailed(_, let reply), .refused(_, let reply): return reply
        default: return nil
        }
    }

    public var description: String {
        switch self {
        case .connectFailed(let why): return "cannot connect: \(why)"
        case .tls(let error): return "cannot connect: \(error)"
        case .actionFailed(let message, _): return message
        case .refused(let status, _): return "refused: \(status)"
        case .timedOut(let request, let n, let after): return "no reply to '\(request)' (messageCount \(n)) within \(after)"
        case .connectionClosed(let reason): return "connection closed (\(reason))"
        case .notConnected: return "not connected"
        case .invalidRequest(let why): return "invalid request: \(why)"
        case .badReply(let why): return "bad reply: \(why)"
        case .cancelled: return "cancelled"
        }
    }
}
