import CHeraldSystem
import Glibc

/// Small wrappers over the system: clock, epoll, descriptor limit, threads.
enum Clock {
    @inline(__always) static func nanos() -> UInt64 { herald_monotonic_ns() }
    @inline(__always) static func micros() -> UInt64 { herald_monotonic_ns() / 1000 }
}

func errnoText(_ code: Int32 = errno) -> String { String(cString: strerror(code)) }

// epoll_ctl operations (<sys/epoll.h> is not imported into Swift).
private let epollAdd: Int32 = 1
private let epollDel: Int32 = 2
private let epollMod: Int32 = 3

/// One epoll instance with a fixed event array.
final class Poller {
    let fd: Int32
    private let events: UnsafeMutablePointer<herald_epoll_event>
    static let batch = 256

    init() throws {
        fd = herald_epoll_create()
        guard fd >= 0 else { throw BenchError.failure("epoll_create: \(errnoText())") }
        events = .allocate(capacity: Poller.batch)
    }

    deinit {
        close(fd)
        events.deallocate()
    }

    func add(_ socket: Int32, _ mask: UInt32, token: Int) {
        _ = herald_epoll_ctl(fd, epollAdd, socket, mask, UInt64(token))
    }

    func modify(_ socket: Int32, _ mask: UInt32, token: Int) {
        _ = herald_epoll_ctl(fd, epollMod, socket, mask, UInt64(token))
    }

    func remove(_ socket: Int32) {
        _ = herald_epoll_ctl(fd, epollDel, socket, 0, 0)
    }

    /// Waits at most `timeoutMs` and calls `handle(token, events)` for each ready socket.
    @inline(__always)
    func wait(timeoutMs: Int32, _ handle: (Int, UInt32) -> Void) {
        let n = herald_epoll_wait(fd, events, Int32(Poller.batch), timeoutMs)
        if n <= 0 { return }
        for i in 0..<Int(n) { handle(Int(truncatingIfNeeded: events[i].data), events[i].events) }
    }
}

let pollIn = HERALD_EPOLLIN
let pollOut = HERALD_EPOLLOUT
let pollErr = HERALD_EPOLLERR | HERALD_EPOLLHUP

enum Limits {
    /// Raises the soft RLIMIT_NOFILE to the hard limit; returns the resulting soft limit.
    @discardableResult
    static func raiseDescriptorLimit() -> Int {
        var rl = rlimit()
        let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
        guard getrlimit(resource, &rl) == 0 else { return 1024 }
        if rl.rlim_cur < rl.rlim_max {
            var raised = rl
            raised.rlim_cur = rl.rlim_max
            if setrlimit(resource, &raised) == 0 { rl = raised }
        }
        return rl.rlim_cur > rlim_t(Int.max) ? Int.max : Int(rl.rlim_cur)
    }

    /// Fails with a usage error when `sockets` connections cannot fit under the limit.
    static func require(sockets: Int) throws {
        let limit = raiseDescriptorLimit()
        if sockets + 32 > limit {
            throw BenchError.usage("\(sockets) connections need about \(sockets + 32) file descriptors; the limit is \(limit) (raise the hard limit with ulimit -Hn)")
        }
    }
}

/// Runs `bodies` each on its own thread and waits for all of them.
func runOnThreads(_ bodies: [@Sendable () -> Void]) {
    final class Box { let body: @Sendable () -> Void; init(_ b: @escaping @Sendable () -> Void) { body = b } }
    var threads: [pthread_t] = []
    for body in bodies {
        var tid = pthread_t()
        let arg = Unmanaged.passRetained(Box(body)).toOpaque()
        let rc = pthread_create(&tid, nil, { raw in
            let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
            box.body()
            return nil
        }, arg)
        if rc != 0 {
            // No thread: run it here instead, so the work still happens.
            Unmanaged<Box>.fromOpaque(arg).takeRetainedValue().body()
        } else {
            threads.append(tid)
        }
    }
    for t in threads { pthread_join(t, nil) }
}
