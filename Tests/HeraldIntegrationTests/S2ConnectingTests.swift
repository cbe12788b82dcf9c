import Foundation
import Testing
@testable import HeraldTestSupport

/// PROTOCOL.md §2: the welcome line, connection ids, connectedAt, the default room.
@Suite("§2 Connecting")
struct ConnectingTests {
    static let welcome = #"{"welcome":"Hello! Welcome to the actionhero api","room":"defaultRoom","context":"api"}"#

    @Test("the welcome line arrives at once, exact bytes")
    func welcomeExact() throws {
        try withHerald { h in
            let c = try h.connect()
            try c.expect(Self.welcome, timeout: 2)
            try c.expectNoData(for: 0.2)
        }
    }

    @Test("defaultRoom \"\": no auto-join, and the welcome has no room key")
    func noDefaultRoom() throws {
        try withHerald(HeraldOptions([("defaultRoom", #""""#)])) { h in
            let c = try h.connect()
            try c.expect(#"{"welcome":"Hello! Welcome to the actionhero api","context":"api"}"#)
            try c.roundTrip("detailsView", #"{"status":"OK","context":"response","data":{"id":"<UUID>","remoteIP":"127.0.0.1","remotePort":<INT>,"params":{},"connectedAt":<INT>,"rooms":[],"totalActions":0,"pendingActions":0},"messageCount":1}"#)
            try c.roundTrip("roomView defaultRoom", #"{"status":"not member of room defaultRoom","context":"response","messageCount":2}"#)
        }
    }

    @Test("a configured defaultRoom and welcomeMessage appear in the welcome")
    func configuredWelcome() throws {
        try withHerald(HeraldOptions([("defaultRoom", "lobby"), ("welcomeMessage", "Hi there, friend")])) { h in
            let c = try h.connect()
            try c.expect(#"{"welcome":"Hi there, friend","room":"lobby","context":"api"}"#)
            try c.roundTrip("roomView", #"{"status":"OK","context":"response","data":{"room":"lobby","members":{"<UUID>":{"id":"<UUID>","joinedAt":<INT>}},"membersCount":1},"messageCount":1}"#)
        }
    }

    @Test("ids are lowercase version-4 UUIDs, unique per connection; connectedAt is now in ms")
    func idsAndConnectedAt() throws {
        try withHerald { h in
            var ids = Set<String>()
            for _ in 0..<40 {
                let before = nowMs()
                let (c, _) = try h.connectWelcomed()
                let after = nowMs()
                try c.send("detailsView")
                let caps = try c.expect(#"{"status":"OK","context":"response","data":{"id":"<UUID>","remoteIP":"127.0.0.1","remotePort":<INT>,"params":{},"connectedAt":<INT>,"room":"defaultRoom","rooms":["defaultRoom"],"totalActions":0,"pendingActions":0},"messageCount":1}"#)
                let id = caps[0]
                try check(isUUIDv4(id), "id \(id) is not a canonical lowercase v4 UUID")
                try check(!ids.contains(id), "id \(id) was given to two connections")
                ids.insert(id)
                let connectedAt = Int64(caps[2]) ?? -1
                try check(connectedAt >= before - 1000 && connectedAt <= after + 1000,
                          "connectedAt \(connectedAt) is not the connect time (between \(before) and \(after))")
                c.close()
            }
        }
    }

    @Test("remoteIP is 127.0.0.1 and remotePort is the client's own port")
    func remoteAddress() throws {
        try withHerald { h in
            let (c, _) = try h.connectWelcomed()
            try c.send("detailsView")
            let caps = try c.expect(#"{"status":"OK","context":"response","data":{"id":"<UUID>","remoteIP":"127.0.0.1","remotePort":<INT>,<ANY>"#)
            try check(caps[1] == String(c.localPort), "remotePort \(caps[1]) is not the client's port \(c.localPort)")
        }
    }

    @Test("a new connection joins the default room")
    func joinsDefaultRoom() throws {
        try withHerald { h in
            let (a, aId) = try h.connectWithId()
            let caps = try a.roundTrip("roomView", #"{"status":"OK","context":"response","data":{"room":"defaultRoom","members":{"<UUID>":{"id":"<UUID>","joinedAt":<INT>}},"membersCount":1},"messageCount":2}"#)
            try check(caps[0] == aId && caps[1] == aId, "the member listed is not the connection itself: \(caps) vs \(aId)")
            let (_, bId) = try h.connectWithId()
            try a.send("roomView defaultRoom")
            let view = try a.readJSON()
            try check(view["data"]?["membersCount"]?.intValue == 2, "two members expected: \(view)")
            try check(Set(view["data"]?["members"]?.keys ?? []) == [aId, bId], "members must be both connections: \(view)")
        }
    }
}
