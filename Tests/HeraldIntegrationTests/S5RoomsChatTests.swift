import Foundation
import Glibc
import Testing
@testable import HeraldTestSupport

/// PROTOCOL.md §5 (one worker): rooms, say, delivery order, leaving on close,
/// join/leave announcements.
@Suite("§5 Rooms and chat")
struct RoomsChatTests {
    static let sayOK = #"{"status":"OK","context":"response","data":null,"messageCount":"#

    static func chat(_ message: String, room: String, from: String) -> String {
        #"{"message":"# + jsonString(message) + #","room":"# + jsonString(room) + #","from":""# + from + #"","context":"user","sentAt":<INT>}"#
    }

    @Test("say goes to every other member of the current room, exact shape; never back to the sender")
    func sayCurrentRoom() throws {
        try withHerald { h in
            let (a, aId) = try h.connectWithId()
            let (b, _) = try h.connectWithId()
            let (c, _) = try h.connectWithId()
            let before = nowMs()
            try a.roundTrip("say hooray!", Self.sayOK + "2}")
            for other in [b, c] {
                let caps = try other.expect(Self.chat("hooray!", room: "defaultRoom", from: aId))
                let sentAt = Int64(caps[0]) ?? 0
                try check(sentAt >= before - 1000 && sentAt <= nowMs() + 1000, "sentAt \(sentAt) is not the send time")
            }
            try a.expectNoData(for: 0.3)
        }
    }

    @Test("say <room> message goes to that room only")
    func sayToRoom() throws {
        try withHerald { h in
            let (a, aId) = try h.connectWithId()
            let (b, _) = try h.connectWithId()
            let (c, _) = try h.connectWithId()
            try a.roundTrip("roomAdd side", #"{"status":"OK","context":"response","data":true,"messageCount":2}"#)
            try b.roundTrip("roomAdd side", #"{"status":"OK","context":"response","data":true,"messageCount":2}"#)
            try a.roundTrip("say side psst, only  for side", Self.sayOK + "3}")
            try b.expect(Self.chat("psst, only  for side", room: "side", from: aId))
            try c.expectNoData(for: 0.3)
            try a.expectNoData(for: 0.05)
        }
    }

    @Test("say: a first word that is not a room the sender is in is part of the message")
    func sayFirstWordNotARoom() throws {
        try withHerald { h in
            let (a, aId) = try h.connectWithId()
            let (b, _) = try h.connectWithId()
            // b is in "side", a is not: the word is message text for a's current room.
            try b.roundTrip("roomAdd side", #"{"status":"OK","context":"response","data":true,"messageCount":2}"#)
            try a.roundTrip("say side is not mine", Self.sayOK + "2}")
            try b.expect(Self.chat("side is not mine", room: "defaultRoom", from: aId))
            // A room name alone, with no message after it, is the message.
            try a.roundTrip("say defaultRoom", Self.sayOK + "3}")
            try b.expect(Self.chat("defaultRoom", room: "defaultRoom", from: aId))
        }
    }

    @Test("say keeps spacing: everything after 'say ' (or 'say <room> ')")
    func saySpacing() throws {
        try withHerald { h in
            let (a, aId) = try h.connectWithId()
            let (b, _) = try h.connectWithId()
            try a.roundTrip("say   three leading, two trailing  ", Self.sayOK + "2}")
            try b.expect(Self.chat("  three leading, two trailing  ", room: "defaultRoom", from: aId))
            try a.roundTrip("say defaultRoom  indented", Self.sayOK + "3}")
            try b.expect(Self.chat(" indented", room: "defaultRoom", from: aId))
        }
    }

    @Test("say with characters JSON must escape arrives intact")
    func sayEscaping() throws {
        try withHerald { h in
            let (a, aId) = try h.connectWithId()
            let (b, _) = try h.connectWithId()
            let text = "he said \"hi\" \\ back\ttab ünï ☃ 😀 </script>"
            try a.roundTrip("say " + text, Self.sayOK + "2}")
            let msg = try b.readJSON()
            try check(msg.keys == ["message", "room", "from", "context", "sentAt"], "chat keys: \(msg)")
            try check(msg["message"]?.stringValue == text, "message must arrive unchanged: \(msg)")
            try check(msg["from"]?.stringValue == aId && msg["context"]?.stringValue == "user", "chat fields: \(msg)")
        }
    }

    @Test("say outside any room is refused")
    func sayNotInRoom() throws {
        try withHerald { h in
            let (a, _) = try h.connectWelcomed()
            try a.roundTrip("roomLeave defaultRoom", #"{"status":"OK","context":"response","data":true,"messageCount":1}"#)
            try a.roundTrip("say anyone?", #"{"status":"connection not in a room","context":"response","data":null,"messageCount":2}"#)
        }
    }

    @Test("1000 messages from one sender arrive in order")
    func orderPreserved() throws {
        try withHerald { h in
            let (a, aId) = try h.connectWithId()
            let (b, _) = try h.connectWithId()
            var batch = ""
            for i in 0..<1000 { batch += "say message \(i)\r\n" }
            try a.sendRaw(batch)
            let pattern = LinePattern(#"{"message":"message <INT>","room":"defaultRoom","from":"<UUID>","context":"user","sentAt":<INT>}"#)
            for i in 0..<1000 {
                let line = try b.readLine()
                guard let caps = pattern.match(line) else {
                    throw HarnessError.mismatch("chat line \(i) has the wrong shape: \(line)")
                }
                try check(caps[0] == String(i), "message \(i) expected, got \(line)")
                try check(caps[1] == aId, "from must be the sender: \(line)")
            }
            for n in 2...1001 { try a.expectOK("null", n) }
        }
    }

    @Test("messages from several senders each keep their own order")
    func perSenderOrder() throws {
        try withHerald { h in
            let (listener, _) = try h.connectWithId()
            var senders: [(LineClient, String)] = []
            for _ in 0..<3 { senders.append(try h.connectWithId()) }
            for round in 0..<50 {
                for (i, s) in senders.enumerated() { try s.0.send("say s\(i) m\(round)") }
            }
            var next = [String: Int]()
            for _ in 0..<150 {
                let msg = try listener.readJSON()
                let from = msg["from"]?.stringValue ?? ""
                let expected = "m\(next[from, default: 0])"
                let text = msg["message"]?.stringValue ?? ""
                try check(text.hasSuffix(" " + expected), "from \(from): expected \(expected) next, got \(msg)")
                next[from, default: 0] += 1
            }
            try check(Set(next.keys) == Set(senders.map(\.1)), "every sender must be heard: \(next)")
        }
    }

    @Test("a connection may be in many rooms; roomView counts members per room")
    func manyRooms() throws {
        try withHerald { h in
            let (a, _) = try h.connectWelcomed()
            let (b, _) = try h.connectWelcomed()
            for i in 1...20 { try a.roundTrip("roomAdd room\(i)", #"{"status":"OK","context":"response","data":true,"messageCount":\#(i)}"#) }
            for i in 1...10 { try b.roundTrip("roomAdd room\(i)", #"{"status":"OK","context":"response","data":true,"messageCount":\#(i)}"#) }
            try a.send("roomView room5")
            try check(try a.readJSON()["data"]?["membersCount"]?.intValue == 2, "room5 must have 2 members")
            try a.send("roomView room15")
            try check(try a.readJSON()["data"]?["membersCount"]?.intValue == 1, "room15 must have 1 member")
            try a.send("detailsView")
            let rooms = try a.readJSON()["data"]?["rooms"]?.arrayValue?.compactMap(\.stringValue) ?? []
            try check(rooms == ["defaultRoom"] + (1...20).map { "room\($0)" }, "rooms in join order: \(rooms)")
        }
    }

    /// Polls `roomView room` on `watcher` until it counts `expected` members or `limit` passes.
    static func waitForMembers(_ watcher: LineClient, room: String, expected: Int, within limit: Double) throws {
        let deadline = Deadline(limit)
        var last = JSON.null
        repeat {
            try watcher.send("roomView \(room)")
            last = try watcher.readJSON()
            if last["data"]?["membersCount"]?.intValue == Int64(expected) { return }
            usleep(20_000)
        } while !deadline.passed
        throw HarnessError.mismatch("roomView \(room) still does not count \(expected) members after \(limit) s: \(last)")
    }

    @Test("a connection that closes (quit, hang-up, reset) leaves all its rooms within a second")
    func leavesOnClose() throws {
        try withHerald { h in
            let (watcher, _) = try h.connectWelcomed()
            try watcher.roundTrip("roomAdd extra", #"{"status":"OK","context":"response","data":true,"messageCount":1}"#)
            for how in ["quit", "close", "reset"] {
                let (c, _) = try h.connectWelcomed()
                try c.roundTrip("roomAdd extra", #"{"status":"OK","context":"response","data":true,"messageCount":1}"#)
                try Self.waitForMembers(watcher, room: "extra", expected: 2, within: 1)
                switch how {
                case "quit":
                    try c.send("quit")
                    try c.expect(#"{"status":"Bye!","context":"api","reason":"quit requested"}"#)
                    c.close()
                case "close": c.close()
                default: c.resetClose()
                }
                try Self.waitForMembers(watcher, room: "extra", expected: 1, within: 1)
                try Self.waitForMembers(watcher, room: "defaultRoom", expected: 1, within: 1)
            }
        }
    }

    @Test("announceJoinLeave on: joins and leaves are announced to the other members")
    func announcementsOn() throws {
        try withHerald(HeraldOptions([("announceJoinLeave", "true")])) { h in
            let (a, _) = try h.connectWithId()
            let (b, bId) = try h.connectWithId()
            try a.expect(Self.chat("I have entered the room", room: "defaultRoom", from: bId))
            try a.roundTrip("roomAdd side", #"{"status":"OK","context":"response","data":true,"messageCount":2}"#)
            try b.roundTrip("roomAdd side", #"{"status":"OK","context":"response","data":true,"messageCount":2}"#)
            try a.expect(Self.chat("I have entered the room", room: "side", from: bId))
            try b.roundTrip("roomLeave side", #"{"status":"OK","context":"response","data":true,"messageCount":3}"#)
            try a.expect(Self.chat("I have left the room", room: "side", from: bId))
            try b.expectNoData(for: 0.2)  // nobody hears their own announcement
            try b.send("quit")
            try b.expect(#"{"status":"Bye!","context":"api","reason":"quit requested"}"#)
            try a.expect(Self.chat("I have left the room", room: "defaultRoom", from: bId))
            let (c, cId) = try h.connectWithId()
            try a.expect(Self.chat("I have entered the room", room: "defaultRoom", from: cId))
            c.close()
            try a.expect(Self.chat("I have left the room", room: "defaultRoom", from: cId))
        }
    }

    @Test("announceJoinLeave off (default): joins and leaves are silent")
    func announcementsOff() throws {
        try withHerald { h in
            let (a, _) = try h.connectWelcomed()
            let (b, _) = try h.connectWelcomed()
            try b.roundTrip("roomAdd x", #"{"status":"OK","context":"response","data":true,"messageCount":1}"#)
            try b.roundTrip("roomLeave x", #"{"status":"OK","context":"response","data":true,"messageCount":2}"#)
            b.close()
            try a.expectNoData(for: 0.4)
        }
    }
}
