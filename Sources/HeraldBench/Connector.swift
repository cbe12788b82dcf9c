import COpenSSL
import Glibc

/// A resolved `host:port`.
struct Endpoint: CustomStringConvertible {
    let host: String
    let port: Int
    fileprivate var address = sockaddr_storage()
    fileprivate var length: socklen_t = 0
    fileprivate var family: Int32 = 0

    var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    init(host: String, port: Int) throws {
        self.host = host
        self.port = port
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, String(port), &hints, &list)
        guard rc == 0, let first = list else {
            throw BenchError.failure("cannot resolve host '\(host)': \(String(cString: gai_strerror(rc)))")
        }
        defer { freeaddrinfo(list) }
        family = first.pointee.ai_family
        length = first.pointee.ai_addrlen
        withUnsafeMutableBytes(of: &address) { dst in
            dst.copyMemory(from: UnsafeRawBufferPointer(start: first.pointee.ai_addr, count: Int(first.pointee.ai_addrlen)))
        }
    }

    /// A non-blocking TCP_NODELAY socket with a connect under way (or done), from
    /// `source` (an IPv4 address in network order) when given: bound with
    /// IP_BIND_ADDRESS_NO_PORT, so the kernel picks the port at connect time by the whole
    /// address pair and one source address serves ~28,000 connections per server port.
    func startConnect(from source: UInt32? = nil) throws -> Int32 {
        let fd = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw BenchError.failure("socket: \(errnoText())") }
        var one: Int32 = 1
        _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        if let source {
            guard family == AF_INET else {
                close(fd)
                throw BenchError.usage("--sources are IPv4 addresses; \(self) is not IPv4")
            }
            _ = setsockopt(fd, Int32(IPPROTO_IP), IP_BIND_ADDRESS_NO_PORT, &one, socklen_t(MemoryLayout<Int32>.size))
            var local = sockaddr_in()
            local.sin_family = sa_family_t(AF_INET)
            local.sin_addr.s_addr = source
            let bound = withUnsafePointer(to: &local) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            if bound != 0 {
                let code = errno
                close(fd)
                throw BenchError.failure("cannot bind the source address \(SourceAddresses.text(source)): \(errnoText(code))")
            }
        }
        var addr = address
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, length) }
        }
        if rc != 0 && errno != EINPROGRESS {
            let code = errno
            close(fd)
            throw BenchError.failure("cannot connect to \(self): \(errnoText(code))")
        }
        return fd
    }
}

/// One client connection with its buffers.
final class Connection {
    let fd: Int32
    let input: InBuffer
    let output = OutBuffer(capacity: 512)
    var closed = false
    /// The TLS session (SSL *) when the load runs over TLS (`--tls`).
    var tls: OpaquePointer?

    init(fd: Int32, inputCapacity: Int) {
        self.fd = fd
        input = InBuffer(capacity: inputCapacity)
    }

    func close() {
        if !closed {
            closed = true
            if let tls { SSL_free(tls); self.tls = nil }
            Glibc.close(fd)
        }
    }

    /// Reads into `input` (through TLS when on): byte count, 0 at the end, -1 later, -2 error.
    @inline(__always)
    func read() -> Int {
        if let tls { return input.read(tls: tls) }
        return input.read(from: fd)
    }

    /// Writes `output` (through TLS when on); false on a hard error.
    @inline(__always)
    func flush() -> Bool {
        if let tls { return output.flush(tls: tls) }
        return output.flush(to: fd)
    }
}

enum Connector {
    /// Opens `count` connections to `endpoint`, at most `concurrency` connects in flight,
    /// and when `readWelcome` waits for (and discards) one line on each. Throws a
    /// `.failure` naming the endpoint on refusal, reset or timeout; nothing stays open then.
    /// `sources`: local IPv4 addresses (network order) the connections come from, in turn;
    /// `timeout`: seconds for all of them (default 10 s + 1 ms a connection).
    static func open(_ count: Int, to endpoint: Endpoint, readWelcome: Bool, inputCapacity: Int = 16384,
                     concurrency: Int = 256, sources: [UInt32] = [], timeout: Double? = nil) throws -> [Connection] {
        var connections: [Connection] = []
        connections.reserveCapacity(count)
        var stage: [UInt8] = []              // 0 connecting, 1 awaiting welcome, 2 ready
        var inFlight = 0
        var ready = 0
        let timeout = timeout ?? (10.0 + Double(count) / 1000)
        let deadline = Clock.nanos() + UInt64(timeout * 1e9)
        let poller = try Poller()
        var failure: BenchError?

        func finish(_ i: Int) { stage[i] = 2; inFlight -= 1; ready += 1; poller.remove(connections[i].fd) }

        while ready < count && failure == nil {
            while inFlight < concurrency && connections.count < count {
                let fd: Int32
                let source = sources.isEmpty ? nil : sources[connections.count % sources.count]
                do { fd = try endpoint.startConnect(from: source) } catch let e as BenchError { failure = e; break }
                connections.append(Connection(fd: fd, inputCapacity: inputCapacity))
                stage.append(0)
                inFlight += 1
                poller.add(fd, pollOut | pollErr, token: connections.count - 1)
            }
            if failure != nil { break }
            if Clock.nanos() > deadline {
                let waiting = stage.filter { $0 == 1 }.count
                var text = "timed out after \(Format.fixed(timeout, 0))s: \(ready) of \(count) connections to \(endpoint) ready"
                if waiting > 0 { text += "; \(waiting) got no welcome line (is it a herald server? use --target redis for redis)" }
                failure = .failure(text)
                break
            }
            poller.wait(timeoutMs: 50) { i, events in
                guard failure == nil else { return }
                let c = connections[i]
                if stage[i] == 0 {
                    var err: Int32 = 0
                    var len = socklen_t(MemoryLayout<Int32>.size)
                    _ = getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len)
                    if err != 0 || events & pollOut == 0 {
                        failure = .failure("cannot connect to \(endpoint): \(errnoText(err != 0 ? err : ECONNRESET))")
                        return
                    }
                    if readWelcome {
                        stage[i] = 1
                        poller.modify(c.fd, pollIn, token: i)
                    } else {
                        finish(i)
                    }
                    return
                }
                let n = c.input.read(from: c.fd)
                if n == 0 || n == -2 {
                    failure = .failure("connection \(i) to \(endpoint) closed before the welcome line" + (n == -2 ? ": \(errnoText())" : ""))
                    return
                }
                if c.input.nextLine() != nil { finish(i) }
            }
        }
        if let failure {
            for c in connections { c.close() }
            throw failure
        }
        return connections
    }
}
