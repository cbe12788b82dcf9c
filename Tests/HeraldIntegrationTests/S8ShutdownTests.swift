import Foundation
import Glibc
import Testing
@testable import HeraldTestSupport

/// PROTOCOL.md §8: graceful stop (pending replies, then goodbye, then close, exit 0)
/// and the telnet break characters.
@Suite("§8 Shutdown and goodbye")
struct ShutdownTests {
    static let shutdownBye = #"{"status":"Bye!","context":"api","reason":"server shutdown"}"#
    static let breakBye = #"{"status":"Bye!","context":"api","reason":"break-character"}"#

    static func expectExit(_ h: HeraldProcess, within seconds: Double) throws {
        guard let status = h.waitForExit(timeout: seconds) else {
            throw HarnessError.timeout("herald did not exit within \(seconds) s of the signal")
        }
        try check(status == .exited(0), "herald must exit 0 after a graceful stop, got \(status)")
    }

    @Test("SIGTERM with a pending sleepTest: its reply, then the goodbye, then close; exit 0")
    func sigtermWithPending() throws {
        try withHerald { h in
            let (c, _) = try h.connectWelcomed()
            let (idle, _) = try h.connectWelcomed()
            try c.send(#"{"action":"sleepTest","params":{"sleepDuration":800}}"#)
            try c.send("detailsView")
            try c.expect(#"{"status":"OK","context":"response","data":{<ANY>"totalActions":1,"pendingActions":1},"messageCount":2}"#)
            h.signal(SIGTERM)
            try c.expect(#"{"sleepStarted":<INT>,"sleepEnded":<INT>,"sleepDelta":<INT>,"sleepDuration":800,"context":"response","messageCount":1}"#, timeout: 6)
            try c.expect(Self.shutdownBye, timeout: 3)
            try c.expectClosed()
            try idle.expect(Self.shutdownBye, timeout: 6)
            try idle.expectClosed()
            try Self.expectExit(h, within: 6)
        }
    }

    @Test("SIGINT: every connection gets the goodbye and is closed; exit 0")
    func sigintGoodbye() throws {
        try withHerald { h in
            var clients: [LineClient] = []
            for _ in 0..<5 { clients.append(try h.connectWelcomed().0) }
            try clients[0].roundTrip("roomAdd r", #"{"status":"OK","context":"response","data":true,"messageCount":1}"#)
            h.signal(SIGINT)
            for c in clients {
                try c.expect(Self.shutdownBye)
                try c.expectClosed()
            }
            try Self.expectExit(h, within: 6)
        }
    }

    @Test("requests arriving while pending actions finish are refused: the server is shutting down")
    func requestsDuringShutdown() throws {
        try withHerald { h in
            let (c, _) = try h.connectWelcomed()
            try c.send(#"{"action":"sleepTest","params":{"sleepDuration":1500}}"#)
            try c.roundTrip("paramsView", #"{"status":"OK","context":"response","data":{},"messageCount":2}"#)
            h.signal(SIGTERM)
            usleep(400_000)
            try c.roundTrip("randomNumber", #"{"error":"the server is shutting down","context":"response","messageCount":3}"#)
            try c.expect(#"{"sleepStarted":<INT>,"sleepEnded":<INT>,"sleepDelta":<INT>,"sleepDuration":1500,"context":"response","messageCount":1}"#, timeout: 6)
            try c.expect(Self.shutdownBye, timeout: 3)
            try c.expectClosed()
            try Self.expectExit(h, within: 6)
        }
    }

    @Test("a stopping server welcomes no new connection")
    func stopsAccepting() throws {
        try withHerald { h in
            let (c, _) = try h.connectWelcomed()
            try c.send(#"{"action":"sleepTest","params":{"sleepDuration":1500}}"#)
            try c.roundTrip("paramsView", #"{"status":"OK","context":"response","data":{},"messageCount":2}"#)
            h.signal(SIGTERM)
            usleep(300_000)
            // Refused, or accepted by the kernel but never welcomed: both are fine.
            if let late = try? LineClient(port: h.port, connectTimeout: 1) {
                defer { late.close() }
                if let line = try? late.readLine(timeout: 0.5) {
                    try check(!line.hasPrefix(#"{"welcome""#), "a connection made after SIGTERM was welcomed: \(line)")
                }
            }
            try c.expect(#"{"sleepStarted":<INT>,"sleepEnded":<INT>,"sleepDelta":<INT>,"sleepDuration":1500,"context":"response","messageCount":1}"#, timeout: 6)
            try c.expect(Self.shutdownBye, timeout: 3)
            try Self.expectExit(h, within: 6)
        }
    }

    @Test("pendingShutdownWaitLimit caps the wait for pending actions")
    func shutdownWaitLimit() throws {
        try withHerald(HeraldOptions([("pendingShutdownWaitLimit", "300")])) { h in
            let (c, _) = try h.connectWelcomed()
            try c.send(#"{"action":"sleepTest","params":{"sleepDuration":4000}}"#)
            try c.roundTrip("paramsView", #"{"status":"OK","context":"response","data":{},"messageCount":2}"#)
            let start = Deadline.now()
            h.signal(SIGTERM)
            try c.expect(Self.shutdownBye, "the goodbye comes without the 4 s sleep's reply", timeout: 3)
            try check(Deadline.now() - start < 2.5, "the goodbye took \(Deadline.now() - start) s with a 300 ms wait limit")
            try c.expectClosed()
            try Self.expectExit(h, within: 5)
        }
    }

    @Test("telnet Ctrl-C (ff f4 ff fd 06) gets the break-character goodbye and a close")
    func telnetInterrupt() throws {
        try withHerald { h in
            let (c, _) = try h.connectWelcomed()
            try c.roundTrip("randomNumber", #"{"randomNumber":<NUM>,"context":"response","messageCount":1}"#)
            try c.sendRaw([0xff, 0xf4, 0xff, 0xfd, 0x06])
            try c.expect(Self.breakBye)
            try c.expectClosed()
            try h.requireServing("after a telnet break")
        }
    }

    @Test("a lone Ctrl-D (04) in a read gets the break-character goodbye and a close")
    func ctrlD() throws {
        try withHerald { h in
            let (c, _) = try h.connectWelcomed()
            try c.sendRaw([0x04])
            try c.expect(Self.breakBye)
            try c.expectClosed()
            try h.requireServing("after Ctrl-D")
        }
    }

    @Test("a 04 byte inside a longer line is data, not a break")
    func ctrlDInsideLine() throws {
        try withHerald { h in
            let (c, _) = try h.connectWelcomed()
            try c.sendRaw(Array("paramAdd k=a".utf8) + [0x04] + Array("b\r\n".utf8))
            try c.expectOK("null", 1)
            try c.send("paramView k")
            let reply = try c.readJSON()
            try check(reply["data"]?.stringValue == "a\u{04}b", "the 04 byte is part of the value: \(reply)")
        }
    }
}
