@testable import HeraldCluster
import Testing

/// When the supervisor kills a stopping worker (`DrainWatch`): at the drain limit unless
/// it is still closing connections, then at the first look without progress or once the
/// extension is used up.
@Suite struct DrainWatchTests {
    @Test func aWorkerThatIsNotClosingConnectionsIsKilledAtTheLimit() {
        var watch = DrainWatch(startedAt: 1_000, limit: 10_000, remaining: 500)
        #expect(watch.check(now: 11_000, remaining: 500) == .kill)
        var stuckAtZero = DrainWatch(startedAt: 0, limit: 10_000, remaining: 0)
        #expect(stuckAtZero.check(now: 10_000, remaining: 0) == .kill, "no connections left but not exited: nothing to wait for")
    }

    @Test func aSlowButSteadyWorkerGetsMoreTimeUntilItStalls() {
        var watch = DrainWatch(startedAt: 0, limit: 10_000, remaining: 19_000)
        #expect(watch.check(now: 10_000, remaining: 12_000) == .extend)
        #expect(watch.check(now: 15_000, remaining: 4_000) == .extend)
        #expect(watch.check(now: 20_000, remaining: 4_000) == .kill, "no fewer than at the last look")
    }

    @Test func theExtensionIsBounded() {
        var watch = DrainWatch(startedAt: 0, limit: 10_000, remaining: 1_000_000)
        var now = 10_000
        var connections = 999_999  // one fewer at every look
        var looks = 0
        while watch.check(now: now, remaining: connections) == .extend {
            looks += 1
            now += DrainWatch.checkInterval
            connections -= 1
        }
        #expect(now >= 10_000 + DrainWatch.maxExtension && now <= DrainWatch.longest(limit: 10_000))
        #expect(looks == DrainWatch.maxExtension / DrainWatch.checkInterval)
    }
}

@Suite struct WorkerReportStopWorkTests {
    @Test func stopWorkGoesThroughTheReportLine() {
        var report = WorkerReport(kind: .stats, serverID: "h-1-a", connections: 19_000, rooms: 1, totalActions: 0)
        #expect(report.encoded().withUnsafeBytes { WorkerReport(line: $0) }?.stopWork == nil, "not stopping: none")
        report.stopWork = 31_000
        let decoded = report.encoded().withUnsafeBytes { WorkerReport(line: $0) }
        #expect(decoded?.stopWork == 31_000)
        #expect(decoded?.connections == 19_000)
    }
}
