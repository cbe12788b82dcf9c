import Foundation
import Glibc

/// A blocking IPv4 TCP client for the line protocol. Every wait is bounded: reads use
/// SO_RCVTIMEO, writes SO_SNDTIMEO, so a broken server makes a test fail, never hang.
/// Not thread-safe: a test uses its clients from one thread.
final class LineClient {
    static let defaultTimeout: Double = 5

    let port: UInt16
    private var fd: Int32
    private var buffer: [UInt8] = []
    private var start = 0
    private var scanned = 0
    private var sawEOF = false

    init(port: UInt16, connectTimeout: Double = 5) throws {
        self.port = port
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw HarnessError.system("socket", errno) }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        LineClient.setTimeout(fd, SO_SNDTIMEO, connectTimeout)
        var addr = sockaddr_in.loopback(port: port)
        var rc: Int32
        repeat {
            rc = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
        } while rc != 0 && errno == EINTR
        if rc != 0 {
            let err = errno
            Glibc.close(fd)
            throw HarnessError.system("connect to 127.0.0.1:\(port)", err)
        }
        self.fd = fd
    }

    deinit { close() }

    var isOpen: Bool { fd >= 0 }

    /// The client's own port, as the server should report it in `remotePort`.
    var localPort: UInt16 {
        var addr = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        return UInt16(bigEndian: addr.sin_port)
    }

    func close() {
        if fd >= 0 {
            Glibc.close(fd)
            fd = -1
        }
    }

    /// Closes with SO_LINGER 0, so the peer sees a reset instead of a FIN.
    func resetClose() {
        if fd >= 0 {
            var lin = linger(l_onoff: 1, l_linger: 0)
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &lin, socklen_t(MemoryLayout<linger>.size))
        }
        close()
    }

    /// Half-closes the sending side (the server reads end-of-file).
    func shutdownWrite() {
        if fd >= 0 { _ = Glibc.shutdown(fd, Int32(SHUT_WR)) }
    }

    // MARK: sending

    /// Sends `line` followed by `terminator` (CRLF unless told otherwise).
    func send(_ line: String, terminator: String = "\r\n", timeout: Double = defaultTimeout) throws {
        try sendRaw(Array((line + terminator).utf8), timeout: timeout)
    }

    func sendRaw(_ text: String, timeout: Double = defaultTimeout) throws {
        try sendRaw(Array(text.utf8), timeout: timeout)
    }

    /// Sends every byte in one `send` loop (one write unless the kernel takes less).
    func sendRaw(_ bytes: [UInt8], timeout: Double = defaultTimeout) throws {
        let outcome = trySend(bytes[...], timeout: timeout)
        switch outcome.stop {
        case nil: return
        case .timedOut:
            throw HarnessError.timeout("sending \(bytes.count) bytes: only \(outcome.sent) were accepted within \(timeout) s")
        case .failed(let err):
            throw HarnessError.system("send (after \(outcome.sent) of \(bytes.count) bytes)", err)
        }
    }

    enum SendStop: Equatable { case timedOut, failed(Int32) }
    struct SendOutcome { var sent: Int; var stop: SendStop? }

    /// Sends as much of `bytes` as the peer takes within `timeout`. Never throws: the
    /// outcome tells how many bytes went out and what stopped it (nil: all were sent).
    func trySend(_ bytes: ArraySlice<UInt8>, timeout: Double) -> SendOutcome {
        guard fd >= 0 else { return SendOutcome(sent: 0, stop: .failed(EBADF)) }
        let deadline = Deadline(timeout)
        var sent = 0
        while sent < bytes.count {
            let remaining = deadline.remaining
            if remaining <= 0 { return SendOutcome(sent: sent, stop: .timedOut) }
            LineClient.setTimeout(fd, SO_SNDTIMEO, remaining)
            let n = bytes.withUnsafeBytes { raw in
                Glibc.send(fd, raw.baseAddress! + sent, bytes.count - sent, Int32(MSG_NOSIGNAL))
            }
            if n > 0 {
                sent += n
            } else if n < 0 && errno == EINTR {
                continue
            } else if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                continue  // the loop re-checks the deadline
            } else {
                return SendOutcome(sent: sent, stop: .failed(n < 0 ? errno : EPIPE))
            }
        }
        return SendOutcome(sent: sent, stop: nil)
    }

    // MARK: receiving

    private enum Fill { case data, timedOut, eof, failed(Int32) }

    /// One `recv` into the buffer, waiting at most until `deadline`.
    private func fill(_ deadline: Deadline) -> Fill {
        guard fd >= 0 else { return .failed(EBADF) }
        if sawEOF { return .eof }
        while true {
            let remaining = deadline.remaining
            if remaining <= 0 { return .timedOut }
            LineClient.setTimeout(fd, SO_RCVTIMEO, remaining)
            var chunk = [UInt8](repeating: 0, count: 65536)
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n > 0 {
                if start > 0 && start >= buffer.count / 2 {
                    buffer.removeFirst(start)
                    scanned -= start
                    start = 0
                }
                buffer.append(contentsOf: chunk[0..<n])
                return .data
            }
            if n == 0 { sawEOF = true; return .eof }
            let err = errno
            if err == EINTR { continue }
            if err == EAGAIN || err == EWOULDBLOCK { return deadline.remaining <= 0 ? .timedOut : .timedOut }
            return .failed(err)
        }
    }

    private var pending: ArraySlice<UInt8> { buffer[start...] }

    /// Reads one line the server wrote and returns it without its `\r\n`.
    func readLine(timeout: Double = defaultTimeout) throws -> String {
        let bytes = try readLineBytes(timeout: timeout)
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw HarnessError.mismatch("the server sent a line that is not valid UTF-8: \(describe(bytes))")
        }
        return text
    }

    func readLineBytes(timeout: Double = defaultTimeout) throws -> [UInt8] {
        let deadline = Deadline(timeout)
        while true {
            var i = max(scanned, start)
            while i + 1 < buffer.count {
                if buffer[i] == 13 && buffer[i + 1] == 10 {
                    let line = Array(buffer[start..<i])
                    start = i + 2
                    scanned = start
                    return line
                }
                i += 1
            }
            scanned = max(start, buffer.count - 1)
            switch fill(deadline) {
            case .data: continue
            case .timedOut:
                throw HarnessError.timeout("no complete line within \(timeout) s; unterminated data received: \(describe(Array(pending)))")
            case .eof:
                throw HarnessError.closed("the server closed the connection while a line was awaited; unterminated data: \(describe(Array(pending)))")
            case .failed(let err):
                throw HarnessError.system("recv while a line was awaited (unterminated data: \(describe(Array(pending))))", err)
            }
        }
    }

    /// Reads exactly `count` raw bytes (file bodies, §7).
    func readRaw(count: Int, timeout: Double = defaultTimeout) throws -> [UInt8] {
        let deadline = Deadline(timeout)
        while buffer.count - start < count {
            switch fill(deadline) {
            case .data: continue
            case .timedOut:
                throw HarnessError.timeout("only \(buffer.count - start) of \(count) bytes arrived within \(timeout) s: \(describe(Array(pending)))")
            case .eof:
                throw HarnessError.closed("the server closed the connection after \(buffer.count - start) of \(count) bytes: \(describe(Array(pending)))")
            case .failed(let err):
                throw HarnessError.system("recv after \(buffer.count - start) of \(count) bytes", err)
            }
        }
        let out = Array(buffer[start..<(start + count)])
        start += count
        scanned = start
        return out
    }

    /// Reads whatever arrives within `timeout` (for diagnostics and draining).
    func readAvailable(timeout: Double) -> [UInt8] {
        let deadline = Deadline(timeout)
        while case .data = fill(deadline) {}
        let out = Array(pending)
        start = buffer.count
        scanned = start
        return out
    }

    /// Expects the server to close the connection within `timeout` without sending
    /// anything more. A reset counts as closed.
    func expectClosed(timeout: Double = defaultTimeout) throws {
        let deadline = Deadline(timeout)
        while true {
            if start < buffer.count {
                throw HarnessError.mismatch("expected the connection to close, but the server sent more: \(describe(Array(pending)))")
            }
            switch fill(deadline) {
            case .data: continue
            case .eof, .failed: return
            case .timedOut:
                throw HarnessError.timeout("the server did not close the connection within \(timeout) s")
            }
        }
    }

    /// Expects nothing to arrive (and the connection to stay open) for `seconds`.
    func expectNoData(for seconds: Double) throws {
        if start < buffer.count {
            throw HarnessError.mismatch("expected no data, but already have: \(describe(Array(pending)))")
        }
        switch fill(Deadline(seconds)) {
        case .timedOut: return
        case .data:
            let got = readAvailable(timeout: 0.05)
            throw HarnessError.mismatch("expected no data for \(seconds) s, but received: \(describe(got))")
        case .eof:
            throw HarnessError.closed("expected no data for \(seconds) s, but the server closed the connection")
        case .failed(let err):
            throw HarnessError.system("recv while expecting no data", err)
        }
    }

    enum DrainEnd: Equatable { case closed, timedOut, byteLimit }

    /// Reads and discards until the peer closes, `timeout` passes or `maxBytes` were read.
    func drain(timeout: Double, maxBytes: Int) -> (bytes: Int, end: DrainEnd) {
        let deadline = Deadline(timeout)
        var total = buffer.count - start
        buffer.removeAll(keepingCapacity: true)
        start = 0
        scanned = 0
        while total < maxBytes {
            switch fill(deadline) {
            case .data:
                total += buffer.count
                buffer.removeAll(keepingCapacity: true)
            case .eof, .failed: return (total, .closed)
            case .timedOut: return (total, .timedOut)
            }
        }
        return (total, .byteLimit)
    }

    private static func setTimeout(_ fd: Int32, _ option: Int32, _ seconds: Double) {
        let clamped = max(seconds, 0.001)
        var tv = timeval(tv_sec: Int(clamped), tv_usec: Int((clamped - Double(Int(clamped))) * 1_000_000))
        if tv.tv_sec == 0 && tv.tv_usec == 0 { tv.tv_usec = 1000 }
        setsockopt(fd, SOL_SOCKET, option, &tv, socklen_t(MemoryLayout<timeval>.size))
    }
}

/// A point in monotonic time a wait must not pass.
struct Deadline {
    let end: Double
    init(_ seconds: Double) { end = Deadline.now() + seconds }
    var remaining: Double { end - Deadline.now() }
    var passed: Bool { remaining <= 0 }
    static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }
}

/// Milliseconds since the epoch, as the server writes `connectedAt`, `sentAt` and friends.
func nowMs() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
}

/// Bytes as readable text for failure messages (escapes for controls, cut when long).
func describe(_ bytes: [UInt8], limit: Int = 600) -> String {
    var out = "\""
    for b in bytes.prefix(limit) {
        switch b {
        case 13: out += "\\r"
        case 10: out += "\\n"
        case 9: out += "\\t"
        case 34: out += "\\\""
        case 92: out += "\\\\"
        case 32..<127: out.append(Character(UnicodeScalar(b)))
        default: out += String(format: "\\x%02x", b)
        }
    }
    out += "\""
    if bytes.count > limit { out += "… (\(bytes.count) bytes in all)" }
    return out
}
