import Foundation
import Glibc
import HeraldLoop
import Synchronization
import Testing

/// A loop's thread has SIGPIPE blocked while the loop runs (hiredis writes with
/// `write(2)`: a Redis that closed the connection must not end the process), and as it
/// was afterwards.
@Suite struct EventLoopSignalTests {
    @Test func sigpipeIsBlockedOnTheLoopThreadOnlyWhileItRuns() {
        guard loopTestLock.lock(before: Date().addingTimeInterval(300)) else {
            Issue.record("another test's loop did not end")
            return
        }
        defer { loopTestLock.unlock() }
        let seen = Mutex<(before: Bool, during: Bool, after: Bool)?>(nil)
        let ended = DispatchSemaphore(value: 0)
        let thread = Thread {
            func blocked() -> Bool {
                var mask = sigset_t()
                pthread_sigmask(SIG_BLOCK, nil, &mask)
                return sigismember(&mask, SIGPIPE) == 1
            }
            let before = blocked()
            var during = false
            try? EventLoop.current.run {
                during = blocked()
                EventLoop.current.stop()
            }
            let after = blocked()
            seen.withLock { $0 = (before, during, after) }
            ended.signal()
        }
        thread.start()
        _ = ended.wait(timeout: .now() + 30)
        let result = seen.withLock { $0 }
        #expect(result?.before == false)
        #expect(result?.during == true)
        #expect(result?.after == false)
    }
}
