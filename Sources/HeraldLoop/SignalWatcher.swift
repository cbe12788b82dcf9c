import CHeraldSystem
import Glibc

/// Delivers signals to a callback on the loop, through a signalfd.
@LoopActor
public final class SignalWatcher: EventHandler {
    public struct Delivery: Sendable {
        public let signal: Int32
        public let senderPID: Int32
    }

    private let fd: Int32
    private let onSignal: @LoopActor (Delivery) -> Void

    /// Blocks `signals` for normal delivery and routes them to `onSignal`.
    public init(signals: [Int32], onSignal: @escaping @LoopActor (Delivery) -> Void) throws(SystemError) {
        let fd = (signals + [0]).withUnsafeBufferPointer { herald_signalfd($0.baseAddress) }
        if fd < 0 { throw SystemError("signalfd") }
        self.fd = fd
        self.onSignal = onSignal
        try EventLoop.current.register(fd: fd, events: IOEvents.readable, handler: self)
    }

    public func handleEvents(_ events: UInt32) {
        var pid: Int32 = 0
        var status: Int32 = 0
        while true {
            let signal = herald_signalfd_read(fd, &pid, &status)
            if signal <= 0 { break }
            onSignal(Delivery(signal: Int32(signal), senderPID: pid))
        }
    }

    public func close() {
        EventLoop.current.unregister(fd: fd)
        _ = Glibc.close(fd)
    }
}
