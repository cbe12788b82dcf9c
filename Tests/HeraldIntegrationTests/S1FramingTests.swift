import Foundation
import Glibc
import Testing
@testable import HeraldTestSupport

/// PROTOCOL.md §1: line framing, empty lines, UTF-8, the line length limit.
@Suite("§1 Framing")
struct FramingTests {
    @Test("CRLF, LF and a lone CR each end a line; a lone CR is answered without waiting for more")
    func terminators() throws {
        try withHerald { h in
            let (c, _) = try h.connectWelcomed()
            try c.sendRaw("paramAdd a=1\r\n")
            try c.expectOK("null", 1)
            try c.sendRaw("paramAdd b=2\n")
            try c.expectOK("null", 2)
            try c.sendRaw("paramAdd c=3\r")
            try c.expectOK("null", 3)  // nothing follows the \r: the line must end there
            try c.sendRaw("paramsView\r\n")
            try c.expectOK(#"{"a":"1","b":"2","c":"3"}"#, 4)
        }
    }

    @Test("a \\n arriving in a later read right after a \\r is just an empty line")
    func crThenLaterLF() throws {
        try withHerald { h in
            let (c, _) = try h.connectWelcomed()
            try c.sendRaw("paramAdd a=1\r")
            try c.expectOK("null", 1)
            try c.sendRaw("\n")
            try c.expectNoData(for: 0.3)
            try c.sendRaw("paramsView\n")
            try c.expectOK(#"{"a":"1"}"#, 2)
        }
    }

    @Test("terminators mixed in one write")
    func mixedTerminators() throws {
        try withHerald { h in
            let (c, _) = try h.connectWelcomed()
            try c.sendRaw("paramAdd a=1\rparamAdd b=2\nparamAdd c=3\r\n\r\r\n\nparamAdd d=4\n\rparamsView\r")
            for n in 1...4 { try c.expectOK("null", n) }
            try c.expectOK(#"{"a":"1","b":"2","c":"3","d":"4"}"#, 5)
            try c.expectNoData(for: 0.2)
        }
    }

    @Test("a line sent one byte at a time")
    func oneByteAtATime() throws {
        try withHerald { h in
            let (c, _) = try h.connectWelcomed()
            for byte in Array("paramAdd key=a b=c\r\n".utf8) {
                try c.sendRaw([byte])
                usleep(2_000)
            }
            try c.expectOK("null", 1)
            for byte in Array(#"{"action":"cacheTest","params":{"key":"k","value":"v"}}"#.utf8) + [10] {
                try c.sendRaw([byte])
                usleep(1_000)
            }
            try c.expect(#"{"cacheTestResults":{"saveResp":true,"sizeResp":<INT>,"loadResp":{"key":"cacheTest_k","value":"v","expireTimestamp":<INT>,"createdAt":<INT>,"readAt":<INT>},"deleteResp":true},"context":"response","messageCount":2}"#)
            try c.roundTrip("paramView key", #"{"status":"OK","context":"response","data":"a b=c","messageCount":3}"#)
        }
    }

    @Test("many lines in one write are each answered, in order")
    func manyLinesInOneWrite() throws {
        try withHerald { h in
            let (c, _) = try h.connectWelcomed()
            var batch = ""
            for i in 0..<300 { batch += "paramAdd k\(i)=v\(i)\n" }
            batch += "paramView k299\r\n"
            try c.sendRaw(batch)
            for n in 1...300 { try c.expectOK("null", n) }
            try c.expectOK(#""v299""#, 301)
        }
    }

    @Test("empty lines get no reply and do not count")
    func emptyLines() throws {
        try withHerald { h in
            let (c, _) = try h.connectWelcomed()
            try c.sendRaw("\r\n\n\r\r\n\r\r")
            try c.expectNoData(for: 0.3)
            try c.roundTrip("randomNumber", #"{"randomNumber":<NUM>,"context":"response","messageCount":1}"#)
            try c.sendRaw("\n\n")
            try c.roundTrip("randomNumber", #"{"randomNumber":<NUM>,"context":"response","messageCount":2}"#)
        }
    }

    @Test("lines are never trimmed: spaces and tabs are kept, nothing is dropped or added")
    func neverTrimmed() throws {
        try withHerald { h in
            let (c, _) = try h.connectWelcomed()
            try c.roundTrip("paramAdd key=  spaced  value  ", #"{"status":"OK","context":"response","data":null,"messageCount":1}"#)
            try c.roundTrip("paramView key", #"{"status":"OK","context":"response","data":"  spaced  value  ","messageCount":2}"#)
            try c.send("paramAdd tab=\tx\t")
            try c.expectOK("null", 3)
            try c.send("paramView tab")
            let tab = try c.readJSON()
            try check(tab["data"]?.stringValue == "\tx\t", "a tab-framed value must come back as \"\\tx\\t\", got \(tab)")
            let text = "héllo wörld ✓ 😀 \"quoted\" back\\slash"
            try c.send("paramAdd u=\(text)")
            try c.expectOK("null", 5)
            try c.send("paramView u")
            let reply = try c.readJSON()
            try check(reply["data"]?.stringValue == text, "UTF-8 text must round-trip unchanged, got \(reply)")
            try check(reply["messageCount"]?.intValue == 6, "messageCount 6 expected, got \(reply)")
        }
    }

    @Test("invalid UTF-8 gets the bad-request reply, stores and runs nothing, and the connection goes on")
    func invalidUTF8() throws {
        try withHerald { h in
            let (c, _) = try h.connectWelcomed()
            let bad: [[UInt8]] = [
                Array("paramAdd k=".utf8) + [0xc3, 0x28],          // bad continuation
                [0x80, 0x41],                                       // lone continuation byte
                Array("randomNumber ".utf8) + [0xed, 0xa0, 0x80],   // encoded surrogate
                Array("paramAdd k=".utf8) + [0xc0, 0xaf],          // overlong
                [0x7b, 0xf8, 0x88, 0x80, 0x80, 0x80, 0x7d],         // 5-byte form inside "{…}"
                Array("paramAdd k=abc".utf8) + [0xe2, 0x82],        // truncated at the end
            ]
            for (i, line) in bad.enumerated() {
                try c.sendRaw(line + [13, 10])
                try c.expect(#"{"error":"Error: the request is not valid UTF-8","context":"response","messageCount":\#(i + 1)}"#)
            }
            try c.roundTrip("paramsView", #"{"status":"OK","context":"response","data":{},"messageCount":7}"#)
            try c.roundTrip("randomNumber", #"{"randomNumber":<NUM>,"context":"response","messageCount":8}"#)
        }
    }

    @Test("a multi-byte character split across reads is still valid UTF-8")
    func utf8SplitAcrossReads() throws {
        try withHerald { h in
            let (c, _) = try h.connectWelcomed()
            try c.sendRaw(Array("paramAdd euro=".utf8) + [0xe2, 0x82])
            usleep(50_000)
            try c.sendRaw([0xac, 10])
            try c.expectOK("null", 1)
            try c.send("paramView euro")
            let reply = try c.readJSON()
            try check(reply["data"]?.stringValue == "€", "expected the euro sign back, got \(reply)")
        }
    }

    static let tooBig = #"{"status":"error","error":"data length is too big (64 max)","context":"response","messageCount":"#

    @Test("a line over maxLineBytes gets the exact error, counts once, and the connection stays usable")
    func overLongLine() throws {
        try withHerald(HeraldOptions([("maxLineBytes", "64")])) { h in
            let (c, _) = try h.connectWelcomed()
            try c.send("paramAdd big=" + String(repeating: "x", count: 60))  // 73 bytes
            try c.expect(Self.tooBig + "1}")
            try c.roundTrip("paramAdd a=1", #"{"status":"OK","context":"response","data":null,"messageCount":2}"#)
            // The discarded line stored nothing.
            try c.roundTrip("paramsView", #"{"status":"OK","context":"response","data":{"a":"1"},"messageCount":3}"#)
        }
    }

    @Test("a line of exactly maxLineBytes is accepted; one byte more is not")
    func lineLimitBoundary() throws {
        try withHerald(HeraldOptions([("maxLineBytes", "64")])) { h in
            let (c, _) = try h.connectWelcomed()
            let exact = "paramAdd k=" + String(repeating: "y", count: 53)
            try check(exact.utf8.count == 64, "test line must be 64 bytes")
            try c.roundTrip(exact, #"{"status":"OK","context":"response","data":null,"messageCount":1}"#)
            try c.roundTrip(exact + "z", Self.tooBig + "2}")
            try c.roundTrip("paramView k", #"{"status":"OK","context":"response","data":""# + String(repeating: "y", count: 53) + #"","messageCount":3}"#)
        }
    }

    @Test("over-long lines split across writes, back to back, and followed by a valid line in the same write")
    func overLongVariants() throws {
        try withHerald(HeraldOptions([("maxLineBytes", "64")])) { h in
            let (c, _) = try h.connectWelcomed()
            for _ in 0..<5 {
                try c.sendRaw(String(repeating: "a", count: 40))
                usleep(20_000)
            }
            try c.sendRaw("\r\n")
            try c.expect(Self.tooBig + "1}")
            let long = String(repeating: "b", count: 200)
            try c.sendRaw(long + "\n" + long + "\r" + "paramAdd ok=yes\r\n")
            try c.expect(Self.tooBig + "2}")
            try c.expect(Self.tooBig + "3}")
            try c.expectOK("null", 4)
            try c.roundTrip("paramsView", #"{"status":"OK","context":"response","data":{"ok":"yes"},"messageCount":5}"#)
            try c.expectNoData(for: 0.2)
        }
    }
}
