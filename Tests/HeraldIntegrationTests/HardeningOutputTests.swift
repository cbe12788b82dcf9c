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
                for k in 0..<8 {
                    try c.roundTrip("paramAdd k\(k)=" + megabyte,
                                    #"{"status":"param value is too big (1000000 bytes max, JSON-encoded)","context":"response","data":null,"messageCount":\#(k + 1)}"#,
                                    timeout: 10)
                }
                // What fits: 100,000 control bytes are 600,002 bytes as JSON…
                let fits = String(repeating: "\u{01}", count: 100_000)
                try c.roundTrip("paramAdd a=" + fits, #"{"status":"OK","context":"response","data":null,"messageCount":9}"#)
                // …and a second one passes the limit on all params together.
                try c.roundTrip("paramAdd b=" + fits,
                                #"{"status":"params are too big (1000000 bytes max, JSON-encoded)","context":"response","data":null,"messageCount":10}"#)
                clients.append(c)
            }
            let peak = WorkerMemory.peakRSSMiB(worker) {
                for c in clients { try? c.sendRaw(String(repeating: "paramsView\n", count: 40), timeout: 2) }
                usleep(2_500_000)
            }
            try check(peak - before < 30, "worker RSS grew from \(before) MiB to \(peak) MiB")
            for (i, c) in clients.enumerated() {
                let drained = c.drain(timeout: 10, maxBytes: 64 << 20)
                try check(drained.end == .closed, "client \(i), which did not read, was not disconnected (\(drained))")
            }
            try check(h.stderrText().contains("the client is not reading"), "the drops are logged")
            let after = WorkerMemory.rssKiB(worker) / 1024
            try check(after - before < 20, "worker RSS \(after) MiB after the clients were dropped (\(before) MiB before)")
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
