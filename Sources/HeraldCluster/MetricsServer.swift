import CHeraldSystem
import Glibc
import HeraldLoop

/// A minimal HTTP/1.1 responder on the supervisor's loop for `GET /metrics` and
/// `GET /health` (HEAD too): one request per connection, answered with
/// `Connection: close`. A request head is at most `maxRequestBytes` (431 beyond it) and
/// must arrive within `readTimeoutMilliseconds` (408 otherwise); other paths get 404,
/// other methods 405.
@LoopActor
public final class MetricsServer: EventHandler {
    public struct Response: Sendable {
        public var status: Int
        public var contentType: String
        public var body: [UInt8]

        public init(status: Int, contentType: String, body: [UInt8]) {
            self.status = status
            self.contentType = contentType
            self.body = body
        }
    }

    public static let maxRequestBytes = 8_192
    public static let readTimeoutMilliseconds = 5_000
    /// At most this many requests at once; more are closed at once.
    public static let maxSessions = 64

    private let fd: Int32
    public let port: Int
    fileprivate let handle: @LoopActor (_ path: String) -> Response
    fileprivate var sessions = 0

    /// `handle` answers a GET of `/metrics` or `/health` (the path without its query).
    public init(host: String, port: Int, handle: @escaping @LoopActor (_ path: String) -> Response) throws(SystemError) {
        fd = try Sockets.listen(host: host, port: port, backlog: 64)
        self.port = Sockets.localPort(of: fd)
        self.handle = handle
        try EventLoop.current.register(fd: fd, events: IOEvents.readable, handler: self)
    }

    /// On a listening socket bound already (inherited by a binary upgrade's new supervisor).
    public init(listening fd: Int32, handle: @escaping @LoopActor (_ path: String) -> Response) throws(SystemError) {
        self.fd = fd
        self.port = Sockets.localPort(of: fd)
        self.handle = handle
        try EventLoop.current.register(fd: fd, events: IOEvents.readable, handler: self)
    }

    /// The listening socket (a binary upgrade passes it on).
    public var listeningDescriptor: Int32 { fd }

    public func handleEvents(_ events: UInt32) {
        while true {
            var address = sockaddr_storage()
            var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let client = herald_accept(fd, &address, &length)
            if client < 0 { return }
            guard sessions < Self.maxSessions else {
                Glibc.close(client)
                continue
            }
            let session = HTTPSession(fd: client, server: self)
            do {
                try EventLoop.current.register(fd: client, events: IOEvents.readable | IOEvents.readHangUp, handler: session)
                sessions += 1
                session.start()
            } catch {
                Glibc.close(client)
            }
        }
    }

    public func close() {
        EventLoop.current.unregister(fd: fd)
        Glibc.close(fd)
    }

    fileprivate func sessionEnded() { sessions -= 1 }

    static let reasons: [Int: String] = [200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
                                         408: "Request Timeout", 431: "Request Header Fields Too Large",
                                         503: "Service Unavailable", 505: "HTTP Version Not Supported"]

    /// The response to a complete request head (through its blank line), or nil while
    /// it is not complete.
    static func respond(to head: [UInt8], handle: (String) -> Response) -> (Response, isHead: Bool) {
        let text = String(decoding: head, as: UTF8.self)
        let requestLine = text.split(separator: "\r\n", maxSplits: 1, omittingEmptySubsequences: false).first
            .map(String.init) ?? ""
        let parts = requestLine.split(separator: " ", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[2].hasPrefix("HTTP/1.") else { return (plain(400, "bad request\n"), false) }
        let method = parts[0]
        var path = Substring(parts[1])
        if let query = path.firstIndex(of: "?") { path = path[..<query] }
        let isHead = method == "HEAD"
        guard path == "/metrics" || path == "/health" else { return (plain(404, "not found: only /metrics and /health\n"), isHead) }
        guard method == "GET" || isHead else { return (plain(405, "method not allowed: GET or HEAD\n"), false) }
        return (handle(String(path)), isHead)
    }

    static func plain(_ status: Int, _ text: String) -> Response {
        Response(status: status, contentType: "text/plain; charset=utf-8", body: Array(text.utf8))
    }

    static func encode(_ response: Response, isHead: Bool, allow: Bool) -> [UInt8] {
        var head = "HTTP/1.1 \(response.status) \(reasons[response.status] ?? "Status")\r\n"
        head += "Content-Type: \(response.contentType)\r\nContent-Length: \(response.body.count)\r\n"
        if allow { head += "Allow: GET, HEAD\r\n" }
        head += "Cache-Control: no-store\r\nConnection: close\r\n\r\n"
        var out = Array(head.utf8)
        if !isHead { out += response.body }
        return out
    }
}

/// One HTTP connection: reads one request head, writes the response without blocking
/// the loop, then closes.
@LoopActor
private final class HTTPSession: EventHandler {
    let fd: Int32
    unowned let server: MetricsServer
    var input: [UInt8] = []
    var output: [UInt8] = []
    var sent = 0
    var answered = false
    var closed = false
    var timer: LoopTimer?

    init(fd: Int32, server: MetricsServer) {
        self.fd = fd
        self.server = server
    }

    func start() {
        timer = EventLoop.current.schedule(afterMilliseconds: MetricsServer.readTimeoutMilliseconds) { [weak self] in
            guard let self, !self.closed else { return }
            if self.answered { self.finish() } else { self.answer(MetricsServer.plain(408, "request timeout\n"), isHead: false) }
        }
    }

    func handleEvents(_ events: UInt32) {
        if answered {
            write()
            return
        }
        var buffer = [UInt8](repeating: 0, count: 4_096)
        while !answered && !closed {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && (errno == EAGAIN || errno == EINTR) { return }
            if n <= 0 { return finish() }
            input.append(contentsOf: buffer[0..<n])
            if let end = Self.headEnd(input) {
                guard end <= MetricsServer.maxRequestBytes else {
                    return answer(MetricsServer.plain(431, "request over \(MetricsServer.maxRequestBytes) bytes\n"), isHead: false)
                }
                let (response, isHead) = MetricsServer.respond(to: Array(input[..<end]), handle: server.handle)
                return answer(response, isHead: isHead)
            }
            if input.count > MetricsServer.maxRequestBytes {
                return answer(MetricsServer.plain(431, "request over \(MetricsServer.maxRequestBytes) bytes\n"), isHead: false)
            }
        }
    }

    /// The index just past the blank line that ends the head.
    static func headEnd(_ bytes: [UInt8]) -> Int? {
        guard bytes.count >= 4 else { return nil }
        for index in 3..<bytes.count where bytes[index] == 0x0A {
            if bytes[index - 1] == 0x0D && bytes[index - 2] == 0x0A && bytes[index - 3] == 0x0D { return index + 1 }
            if bytes[index - 1] == 0x0A { return index + 1 }
        }
        return nil
    }

    func answer(_ response: MetricsServer.Response, isHead: Bool) {
        answered = true
        output = MetricsServer.encode(response, isHead: isHead, allow: response.status == 405)
        input = []
        write()
    }

    func write() {
        while sent < output.count {
            let n = output.withUnsafeBytes { send(fd, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 && errno == EAGAIN {
                EventLoop.current.modify(fd: fd, events: IOEvents.writable | IOEvents.readHangUp)
                return
            }
            if n <= 0 { return finish() }
            sent += n
        }
        // Everything is written: close after our side's FIN (the peer reads to EOF).
        shutdown(fd, Int32(SHUT_WR))
        finish()
    }

    func finish() {
        guard !closed else { return }
        closed = true
        timer?.cancel()
        // Unread input would make the close a reset, which can lose the response.
        var scratch = [UInt8](repeating: 0, count: 4_096)
        for _ in 0..<16 {
            let n = scratch.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if n <= 0 { break }
        }
        EventLoop.current.unregister(fd: fd)
        close(fd)
        server.sessionEnded()
    }
}
