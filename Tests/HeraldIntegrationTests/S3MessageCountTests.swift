import Foundation
import Testing
@testable import HeraldTestSupport

/// PROTOCOL.md §3: messageCount, contexts, keep-alive.
@Suite("§3 messageCount and contexts")
struct MessageCountTests {
    @Test("every non-empty line counts: verbs, actions, refusals and bad requests alike")
    func countsEveryLine() throws {
        try withHerald { h in
            let (c, _) = try h.connectWelcomed()
            try c.roundTrip("paramsView", #"{"status":"OK","context":"response","data":{},"messageCount":1}"#)
            try c.roundTrip("randomNumber", #"{"randomNumber":<NUM>,"context":"response","messageCount":2}"#)
            try c.roundTrip("noSuchAction", #"{"error":"Error: noSuchAction is not a known action.","context":"response","messageCount":3}"#)
            try c.roundTrip("roomLeave nowhere", #"{"status":"connection not in this room","context":"response","data":false,"messageCount":4}"#)
            try c.roundTrip("{not json", #"{"error":"Error: the request is not valid JSON<STR>","context":"response","messageCount":5}"#)
            try c.sendRaw("\r\n")
            try c.roundTrip(#"{"action":"randomNumber"}"#, #"{"randomNumber":<NUM>,"context":"response","messageCount":6}"#)
        }
    }

    @Test("replies carry their request's messageCount even out of order")
    func outOfOrder() throws {
        try withHerald { h in
            let (c, _) = try h.connectWelcomed()
            try c.sendRaw(#"{"action":"sleepTest","params":{"sleepDuration":300}}"# + "\r\nrandomNumber\r\n")
            try c.expect(#"{"randomNumber":<NUM>,"context":"response","messageCount":2}"#, "the fast action answers first")
            try c.expect(#"{"sleepStarted":<INT>,"sleepEnded":<INT>,"sleepDelta":<INT>,"sleepDuration":300,"context":"response","messageCount":1}"#)
        }
    }

    @Test("chat messages carry context user and no messageCount, and do not move the receiver's count")
    func chatContext() throws {
        try withHerald { h in
            let (a, aId) = try h.connectWithId()
            let (b, _) = try h.connectWithId()
            try a.roundTrip("say hi", #"{"status":"OK","context":"response","data":null,"messageCount":2}"#)
            let caps = try b.expect(#"{"message":"hi","room":"defaultRoom","from":"<UUID>","context":"user","sentAt":<INT>}"#)
            try check(caps[0] == aId, "from must be the sender's id")
            try b.roundTrip("randomNumber", #"{"randomNumber":<NUM>,"context":"response","messageCount":2}"#)
        }
    }

    @Test("keep-alive is off by default")
    func noKeepAliveByDefault() throws {
        try withHerald { h in
            let (c, _) = try h.connectWelcomed()
            try c.expectNoData(for: 0.8)
        }
    }

    @Test("keepAliveInterval sends api keep-alive lines that do not count")
    func keepAlive() throws {
        try withHerald(HeraldOptions([("keepAliveInterval", "150")])) { h in
            let (c, _) = try h.connectWelcomed()
            let pattern = #"{"status":"keep-alive","context":"api","serverTime":<INT>}"#
            let before = nowMs()
            let first = try c.expect(pattern, timeout: 2)
            try c.expect(pattern, timeout: 2)
            let serverTime = Int64(first[0]) ?? 0
            try check(abs(serverTime - before) < 3000, "serverTime \(serverTime) is not now (\(before))")
            try c.send("randomNumber")
            var reply = try c.readLine()
            while LinePattern(pattern).match(reply) != nil { reply = try c.readLine() }
            try expectLine(reply, #"{"randomNumber":<NUM>,"context":"response","messageCount":1}"#)
        }
    }
}
