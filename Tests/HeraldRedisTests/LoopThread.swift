import Foundation
import HeraldLoop
import Synchronization

/// Runs `body` on a loop of its own thread; `done` (with a failure or nil) ends it, and
/// so does the loop's own timer after `seconds`. The wait for the thread is longer
/// still (a 2-core CI machine starting the whole suite at once): a loop abandoned
/// while its bus still talks to the test's redis-server fails later tests.
///
/// `EventLoop.current` is one loop for the whole process, and Swift Testing runs tests in
/// parallel: two tests running it at once on two threads share its epoll set, its jobs and
/// its `stop()` (one test's stop ended the other's loop with its outcome unset: "the loop
/// did not end", stop 16's CI failure). Every test that runs the loop holds `loopTestLock`.
func runOnLoopThread(seconds: Double, _ body: @escaping @LoopActor (@escaping @LoopActor (String?) -> Void) -> Void) -> String? {
    guard loopTestLock.lock(before: Date().addingTimeInterval(300)) else { return "another test's loop did not end" }
    defer { loopTestLock.unlock() }
    let outcome = Shared<String??>(nil)
    let ended = DispatchSemaphore(value: 0)
    let thread = Thread {
        try? EventLoop.current.run {
            body { failure in
                outcome.state.withLock { if $0 == nil { $0 = .some(failure) } }
                EventLoop.current.stop()
            }
            EventLoop.current.schedule(afterMilliseconds: Int(seconds * 1_000)) {
                outcome.state.withLock { if $0 == nil { $0 = .some("timed out") } }
                EventLoop.current.stop()
            }
        }
        ended.signal()
    }
    thread.start()
    // (A semaphore, not polling `isFinished`: what this loop thread did happens before
    // the next test's loop thread starts, for the thread sanitizer too.)
    if ended.wait(timeout: .now() + seconds + 60) == .timedOut { return "the loop did not end" }
    return outcome.state.withLock { $0 } ?? "the loop did not end"
}

/// Held by a test while it runs the process's one `EventLoop.current` (see `runOnLoopThread`).
let loopTestLock = NSLock()

/// A value the test thread and a loop thread both touch.
final class Shared<Value: Sendable>: Sendable {
    let state: Mutex<Value>
    init(_ value: Value) { state = Mutex(value) }
}
