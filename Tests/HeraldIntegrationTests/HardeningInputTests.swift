import Foundation
import Glibc
import Testing
@testable import HeraldTestSupport

/// Issue 9, items 3, 10 and 11: input backpressure, half-close, time limits on lines and
/// idle connections. Serialized: some tests measure a worker's memory.
@Suite("Hardening: input", .serialized)
struct HardeningInputTests {
    // MARK: Backpressure (item 3)

    /// 14,000 lines in one write from a client reading as fast as it can: every reply, in
    /// order. Before: dropped as "not reading" with 0 replies, because a whole 64 KiB read
    /// was parsed before anything was written.
    @Test("a pipelined burst from a reading client gets every reply, in order", arguments: [
        ("paramView x", [("maxOutputBytes", "65536")]),
        ("detailsView", []),
    ])
    func pipelinedBurst(line: String, settings: [(String, String)]) throws {
        try withHerald(HeraldOptions(settings)) { h in
            let (c, _) = try h.connectWelcomed()
            let count = 14_000
            let burst = Array(String(repeating: line + "\n", count: count).utf8)
            let sender = BackgroundSender(c, burst, timeout: 30)
            for n in 1...count {
                let reply: String
                do {
                    reply = try c.readLine(timeout: 10)
                } catch {
                    throw HarnessError.mismatch("`\(line)` ×\(count): reply \(n) did not come: \(error)")
                }
                guard reply.hasSuffix(#","messageCount":\#(n)}"#) else {
                    throw HarnessError.mismatch("`\(line)` ×\(count): reply \(n) is out of order or not a reply: \(reply.prefix(200))")
                }
            }
            let sent = sender.wait(timeout: 10)
            try check(sent?.stop == nil && sent?.sent == burst.count, "the burst was not sent whole: \(String(describing: sent))")
            try c.roundTrip("randomNumber", #"{"randomNumber":<NUM>,"context":"response","messageCount":\#(count + 1)}"#)
        }
    }

    /// The same kind of burst from a client that never reads: it is still disconnected,
    /// and the worker's memory stays bounded.
    @Test("a client that pipelines a flood and never reads is disconnected; the worker stays small")
    func nonReadingBurst() throws {
        try withHerald(HeraldOptions([("outputStallTimeout", "1000")])) { h in
            let worker = try WorkerMemory.onlyWorker(of: h)
            let before = WorkerMemory.rssKiB(worker) / 1024
            let (c, _) = try h.connectWelcomed()
            var chunk: [UInt8] = []
            while chunk.count < 1 << 20 { chunk += Array("detailsView\n".utf8) }
            var disconnected = false
            let peak = WorkerMemory.peakRSSMiB(worker) {
                let deadline = Deadline(30)
                while !deadline.passed {
                    let outcome = c.trySend(chunk[...], timeout: 0.25)
                    if case .failed = outcome.stop { disconnected = true; break }
                }
            }
            try check(disconnected, "the non-reading client was not disconnected within 30 s")
            try check(peak - before < 30, "worker RSS grew from \(before) MiB to \(peak) MiB")
            try check(h.stderrText().contains("outputStallTimeout"), "the drop is logged with its reason")
            try h.requireServing("after the flood")
        }
    }

    // MARK: Half-close (item 10)

    /// Sends `lines`, half-closes, and returns every line received until the server closes.
    static func halfClose(_ h: HeraldProcess, _ lines: String, expecting count: Int) throws -> [JSON] {
        let (c, _) = try h.connectWelcomed()
        try c.sendRaw(lines)
        c.shutdownWrite()
        var replies: [JSON] = []
        for _ in 0..<count {
            do {
                replies.append(try c.readJSON(timeout: 10))
            } catch {
                throw HarnessError.mismatch("after `\(lines.debugDescription)` and a half-close: only \(replies.count) of \(count) replies: \(error)")
            }
        }
        try c.expectClosed(timeout: 5)
        return replies
    }

    @Test("half-close: roomView, sleepTest, cacheTest and a mixed batch are all answered, then closed (Redis)")
    func halfCloseAnswersEverything() throws {
        let redis = try RedisServer()
        defer { redis.stop() }
        var options = HeraldOptions()
        options.extraArguments = ["--redis", redis.url]
        try withHerald(options) { h in
            let room = try Self.halfClose(h, "roomView\n", expecting: 1)
            try check(room[0]["data"]?["room"]?.stringValue == "defaultRoom", "roomView reply: \(room[0])")
            let sleep = try Self.halfClose(h, "sleepTest\n", expecting: 1)
            try check(sleep[0]["sleepDuration"]?.intValue == 1000, "sleepTest reply: \(sleep[0])")
            let cache = try Self.halfClose(h, "paramAdd key=k\nparamAdd value=v\ncacheTest\n", expecting: 3)
            try check(cache[2]["cacheTestResults"]?["saveResp"] == .bool(true), "cacheTest reply: \(cache[2])")

            let batch = "paramAdd key=b\nparamAdd value=w\ncacheTest\nroomView\n"
                + #"{"action":"sleepTest","params":{"sleepDuration":300}}"# + "\n"
                + "randomNumber\nroomAdd other\ndetailsView\nroomView other\nroomLeave other\nrandomNu"
            let replies = try Self.halfClose(h, batch, expecting: 10)
            let counts = replies.compactMap { $0["messageCount"]?.intValue }.sorted()
            try check(counts == Array(1...10), "every line of the batch is answered once: \(counts)")
        }
    }

    @Test("half-close without Redis: an async action's reply still comes")
    func halfCloseLocal() throws {
        try withHerald { h in
            let replies = try Self.halfClose(h, #"{"action":"sleepTest","params":{"sleepDuration":200}}"# + "\nroomView\n", expecting: 2)
            let counts = replies.compactMap { $0["messageCount"]?.intValue }
            try check(counts == [2, 1], "roomView first, then the sleep: \(counts)")
        }
    }

    // MARK: Time limits (item 11)

    @Test("a slowloris line (1 byte every 300 ms) is cut after lineTimeout with a goodbye")
    func slowloris() throws {
        try withHerald(HeraldOptions([("lineTimeout", "1000")])) { h in
            let (c, _) = try h.connectWelcomed()
            let started = Deadline.now()
            var goodbye: String?
            for _ in 0..<20 {
                guard (try? c.sendRaw("x")) != nil else { break }
                if let line = try? c.readLine(timeout: 0.3) { goodbye = line; break }
            }
            let elapsed = Deadline.now() - started
            try check(goodbye == #"{"status":"Bye!","context":"api","reason":"line not completed within 1000 ms"}"#,
                      "expected the line-timeout goodbye, got \(goodbye ?? "nothing")")
            try check(elapsed >= 0.9 && elapsed < 3, "cut after \(elapsed) s (lineTimeout 1 s)")
            _ = c.drain(timeout: 4, maxBytes: 1 << 20)
            try h.requireServing("after a slowloris")
        }
    }

    @Test("40 connections holding 1 MiB unfinished lines are cut after lineTimeout, and the memory returns")
    func partialLinesAreCut() throws {
        try withHerald(HeraldOptions([("lineTimeout", "2000")])) { h in
            let worker = try WorkerMemory.onlyWorker(of: h)
            let before = WorkerMemory.rssKiB(worker) / 1024
            var clients: [LineClient] = []
            let almostALine = [UInt8](repeating: UInt8(ascii: "x"), count: 1_048_000)
            for _ in 0..<40 {
                let (c, _) = try h.connectWelcomed()
                try c.sendRaw(almostALine, timeout: 10)
                clients.append(c)
            }
            for (i, c) in clients.enumerated() {
                try c.expect(#"{"status":"Bye!","context":"api","reason":"line not completed within 2000 ms"}"#,
                             "connection \(i)", timeout: 6)
                try c.expectClosed(timeout: 5)
            }
            usleep(300_000)
            let after = WorkerMemory.rssKiB(worker) / 1024
            try check(after - before < 12, "worker RSS was \(before) MiB before, \(after) MiB after the cut lines")
        }
    }

    @Test("idleTimeout closes a silent connection; one that talks stays; off by default")
    func idleTimeout() throws {
        try withHerald(HeraldOptions([("idleTimeout", "800")])) { h in
            let (silent, _) = try h.connectWelcomed()
            let (talker, _) = try h.connectWelcomed()
            let started = Deadline.now()
            var n = 0
            while Deadline.now() - started < 1.6 {
                n += 1
                try talker.roundTrip("randomNumber", #"{"randomNumber":<NUM>,"context":"response","messageCount":\#(n)}"#)
                usleep(200_000)
            }
            try silent.expect(#"{"status":"Bye!","context":"api","reason":"idle for 800 ms"}"#)
            try silent.expectClosed()
            n += 1
            try talker.roundTrip("randomNumber", #"{"randomNumber":<NUM>,"context":"response","messageCount":\#(n)}"#)
        }
        try withHerald { h in
            let (c, _) = try h.connectWelcomed()
            try c.expectNoData(for: 1.5)
            try c.roundTrip("randomNumber", #"{"randomNumber":<NUM>,"context":"response","messageCount":1}"#)
        }
    }
}
