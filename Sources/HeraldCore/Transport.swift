import Glibc
import HeraldLoop

/// The outcome of a transport read or write.
public enum IOResult: Equatable {
    case bytes(Int)
    case wouldBlock
    case closed
    case failed(Int32)
}

/// How a connection's bytes move: a plain socket, or TLS over one.
@LoopActor
public protocol Transport: AnyObject {
    var fd: Int32 { get }
    func read(into buffer: UnsafeMutableRawBufferPointer) -> IOResult
    func write(_ bytes: UnsafeRawBufferPointer) -> IOResult
    /// True while the transport needs the socket to become writable before it can make
    /// progress with reading (a TLS handshake or renegotiation).
    var needsWritableToRead: Bool { get }
    /// True while the last write cannot make progress until the peer sends something (a
    /// TLS handshake in progress): the connection retries the write after its next read
    /// instead of watching for writable.
    var writeWaitsForReadable: Bool { get }
    /// True when the transport holds input that epoll will not report (TLS records
    /// already decrypted or read ahead): the worker reads again at once.
    var hasBufferedInput: Bool { get }
    /// Why the transport ended, when it knows better than "client closed" or an errno
    /// (a failed TLS handshake, a handshake timeout, a missing close_notify).
    var failureReason: String? { get }
    /// Ends the sending direction cleanly (TCP FIN, TLS close_notify).
    func shutdownOutput()
    func close()
}

extension Transport {
    public var writeWaitsForReadable: Bool { false }
    public var hasBufferedInput: Bool { false }
    public var failureReason: String? { nil }
}

/// A plain TCP socket.
@LoopActor
public final class SocketTransport: Transport {
    public let fd: Int32

    public init(fd: Int32) { self.fd = fd }

    public func read(into buffer: UnsafeMutableRawBufferPointer) -> IOResult {
        while true {
            let n = Glibc.read(fd, buffer.baseAddress, buffer.count)
            if n > 0 { return .bytes(n) }
            if n == 0 { return .closed }
            let error = errno
            if error == EINTR { continue }
            if error == EAGAIN || error == EWOULDBLOCK { return .wouldBlock }
            return .failed(error)
        }
    }

    public func write(_ bytes: UnsafeRawBufferPointer) -> IOResult {
        while true {
            let n = send(fd, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL))
            if n >= 0 { return .bytes(n) }
            let error = errno
            if error == EINTR { continue }
            if error == EAGAIN || error == EWOULDBLOCK { return .wouldBlock }
            return .failed(error)
        }
    }

    public var needsWritableToRead: Bool { false }

    public func shutdownOutput() { _ = shutdown(fd, Int32(SHUT_WR)) }

    public func close() { _ = Glibc.close(fd) }
}

/// Makes the transport for each connection a listener accepts (plain TCP by default;
/// TLS plugs in here).
@LoopActor
public protocol TransportFactory: AnyObject {
    /// Wraps an accepted, non-blocking socket. Throwing closes the socket.
    func makeTransport(fd: Int32) throws -> any Transport
}

/// Plain TCP.
@LoopActor
public final class SocketTransportFactory: TransportFactory {
    public init() {}
    public func makeTransport(fd: Int32) throws -> any Transport { SocketTransport(fd: fd) }
}

/// A listening socket a worker serves, and how its connections' bytes move.
public struct ListeningSocket {
    public let fd: Int32
    public let transports: any TransportFactory

    public init(fd: Int32, transports: any TransportFactory) {
        self.fd = fd
        self.transports = transports
    }
}
