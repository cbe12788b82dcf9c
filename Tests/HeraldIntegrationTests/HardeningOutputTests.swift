import Foundation
import Glibc
import Testing
@testable import HeraldTestSupport

/// Issue 9, item 1: the output limit holds, whatever JSON escaping does to the bytes.
/// Serialized: the tests measure a worker's memory.
@Suite("Hardening: output", .serialized)
struct HardeningOutputTests {
    /// Before: three clients each stored 8 MB of 0x01 params (within the old 8 MiB limit),
    /// and one `paramsView` each, unread, queued a 48 MB line apiece: the worker grew by
    /// ~190 MB and kept it while they stayed connected.
    @Test("sticky params of control bytes cannot make paramsView blow up a worker")
    func escapedParamsStayBounded() throws {
        try withHerald(HeraldOptions([("outputStallTimeout", "1000")])) { h in
            let worker = try WorkerMemory.onlyWorker(of: h)
            let before = WorkerMemory.rssKiB(worker) / 1024
            let megabyte = String(repeating: "\u{01}", count: 1_000_000)
            var clients: [LineClient] = []
            for _ in 0..<3 {
                let (c, _) = try h.connectWelcomed()
                // Any value that fits in a line is accepted (PROTOCOL.md): 1 MB of control
                // bytes is 6,000,002 bytes as JSON, within maxStickyParamBytes (8 MiB)…
                try c.roundTrip("paramAdd k0=" + megabyte, #"{"status":"OK","context":"response","data":null,"messageCount":1}"#, timeout: 10)
                // …and a second one passes the limit on all params together.
                try c.roundTrip("paramAdd k1=" + megabyte,
                                #"{"status":"params are too big (8388608 bytes max, JSON-encoded)","context":"response","data":null,"messageCount":2}"#,
                                timeout: 10)
                clients.append(c)
            }
            // 40 paramsView each, unread: every reply would be a 6 MB line; each becomes
            // the small reply-too-big error instead, so nothing piles up.
            let peak = WorkerMemory.peakRSSMiB(worker) {
                for c in clients { try? c.sendRaw(String(repeating: "paramsView\n", count: 40), timeout: 2) }
                usleep(2_500_000)
            }
            try check(peak - before < 30, "worker RSS grew from \(before) MiB to \(peak) MiB")
            for c in clients {
                for k in 0..<40 {
                    try c.expect(#"{"status":"the reply is too big (<NUM> bytes; maxOutputBytes is 1048576)","context":"response","messageCount":\#(k + 3)}"#, timeout: 10)
                }
            }
            try check(h.stderrText().contains("output.lineTooBig"), "the refused replies are logged")
            for c in clients { c.close() }
            let after = WorkerMemory.rssKiB(worker) / 1024
            try check(after - before < 20, "worker RSS \(after) MiB after the clients left (\(before) MiB before)")
        }
    }

    @Test("one sticky param's own limit, counted JSON-encoded")
    func paramValueLimit() throws {
        try withHerald(HeraldOptions([("maxStickyParamValueBytes", "600000")])) { h in
            let (c, _) = try h.connectWelcomed()
            let fits = String(repeating: "\u{01}", count: 99_000)      // 594,002 bytes as JSON
            let tooBig = String(repeating: "\u{01}", count: 100_000)  // 600,002
            try c.roundTrip("paramAdd a=" + fits, #"{"status":"OK","context":"response","data":null,"messageCount":1}"#)
            try c.roundTrip("paramAdd b=" + tooBig,
                            #"{"status":"param value is too big (600000 bytes max, JSON-encoded)","context":"response","data":null,"messageCount":2}"#)
            try c.roundTrip("paramView b", #"{"status":"OK","context":"response","messageCount":3}"#)
        }
    }

    @Test("a single reply bigger than maxOutputBytes becomes an error reply; the connection goes on")
    func oversizedReply() throws {
        let settings = [("maxOutputBytes", "65536"), ("maxStickyParamBytes", "10000000"), ("maxStickyParamValueBytes", "10000000")]
        try withHerald(HeraldOptions(settings)) { h in
            let (c, _) = try h.connectWelcomed()
            let value = String(repeating: "\u{01}", count: 20_000)  // 120,002 bytes as JSON
            try c.roundTrip("paramAdd v=" + value, #"{"status":"OK","context":"response","data":null,"messageCount":1}"#)
            try c.roundTrip("paramsView", #"{"status":"the reply is too big (<NUM> bytes; maxOutputBytes is 65536)","context":"response","messageCount":2}"#)
            try c.roundTrip("paramView v", #"{"status":"the reply is too big (<NUM> bytes; maxOutputBytes is 65536)","context":"response","messageCount":3}"#)
            // An unknown action's error names it: 120 KB of escapes.
            try c.roundTrip(value, #"{"error":"the reply is too big (<NUM> bytes; maxOutputBytes is 65536)","context":"response","messageCount":4}"#)
            try c.roundTrip("paramsDelete", #"{"status":"OK","context":"response","data":null,"messageCount":5}"#)
            try c.roundTrip("paramsView", #"{"status":"OK","context":"response","data":{},"messageCount":6}"#)
            try check(h.stderrText().contains("output.lineTooBig"), "the refused line is logged")
        }
    }
}
