import Foundation
import Glibc
import Testing
@testable import HeraldTestSupport

/// A package of a Herald user builds against a tagged clone of this repository
/// (`.package(url: "file://…", from: "0.2.0")`, products HeraldServer and HeraldClient)
/// and runs: its own server binary answers its own action over TCP to its own client,
/// and carries no `herald bench`. The work is deploy/consumer-test.sh (a debug build of
/// the consumer and all of Herald in a scratch path under /tmp, removed afterwards).
/// That build takes a minute or more, so it runs only with HERALD_CONSUMER_TEST=1:
/// deploy/test.sh (CI) sets it for its one full run of the suite.
@Suite struct ConsumerPackageTests {
    static var enabled: Bool { ProcessInfo.processInfo.environment["HERALD_CONSUMER_TEST"] == "1" }

    static var packageRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    @Test(.enabled(if: ConsumerPackageTests.enabled), .timeLimit(.minutes(15)))
    func consumerPackageBuildsAndRuns() throws {
        let dir = try makeTempDir("herald-consumer-test")
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("stdout").path
        let err = dir.appendingPathComponent("stderr").path
        let script = ConsumerPackageTests.packageRoot.appendingPathComponent("deploy/consumer-test.sh").path
        let env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("HERALD_") }
        let child = try ChildProcess(path: "/bin/bash", arguments: [script], environment: env, directory: dir,
                                     stdoutPath: out, stderrPath: err)
        let status = child.waitForExit(timeout: 840)
        if status == nil { _ = child.stop(grace: 5) }
        let stdout = (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
        let stderr = (try? String(contentsOfFile: err, encoding: .utf8)) ?? ""
        #expect(status == .exited(0), "deploy/consumer-test.sh: \(String(describing: status))\n\(stdout)\n\(stderr)")
        #expect(stdout.contains("greet: Hi, Ada"), "\(stdout)")
        #expect(stdout.contains("consumer-test: OK"), "\(stdout)")
    }
}
