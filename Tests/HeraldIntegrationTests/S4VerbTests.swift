import Foundation
import Testing
@testable import HeraldTestSupport

/// PROTOCOL.md §4: every verb, its reply and each refusal, exact bytes.
@Suite("§4 Verbs")
struct VerbTests {
    static func ok(_ data: String, _ n: Int) -> String {
        #"{"status":"OK","context":"response","data":"# + data + #","messageCount":\#(n)}"#
    }

    @Test("quit, exit and close say goodbye with their reason and close the connection",
          arguments: ["quit", "exit", "close"])
    func goodbyeVerbs(verb: String) throws {
        try withHerald { h in
            let (c, _) = try h.connectWelcomed()
            try c.roundTrip("paramAdd a=1", Self.ok("null", 1))
            try c.send(verb)
            try c.expect(#"{"status":"Bye!","context":"api","reason":"\#(verb) requested"}"#)
            try c.expectClosed()
            try h.requireServing("after \(verb)")
        }
    }

    @Test("paramAdd key=value: the value is everything after the first =, spaces and = included")
    func paramAddEqualsForm() throws {
        try withHerald { h in
            let (c, _) = try h.connectWelcomed()
            try c.roundTrip("paramAdd k=a b=c", Self.ok("null", 1))
            try c.roundTrip("paramView k", Self.ok(#""a b=c""#, 2))
            try c.roundTrip("paramAdd e==x=", Self.ok("null", 3))
            try c.roundTrip("paramView e", Self.ok(#""=x=""#, 4))
            try c.roundTrip("paramAdd empty=", Self.ok("null", 5))
            try c.roundTrip("paramView empty", Self.ok(#""""#, 6))
            try c.roundTrip("paramAdd n=42", Self.ok("null", 7))
            try c.roundTrip("paramView n", Self.ok(#""42""#, 8))  // sticky params are strings
        }
    }

    @Test("paramAdd key value (space form) stores the next word; further words are ignored")
    func paramAddSpaceForm() throws {
        try withHerald { h in
            let (c, _) = try h.connectWelcomed()
            try c.roundTrip("paramAdd k v extra words", Self.ok("null", 1))
            try c.roundTrip("paramView k", Self.ok(#""v""#, 2))
            try c.roundTrip("paramAdd lonely", Self.ok("null", 3))
            try c.roundTrip("paramView lonely", Self.ok(#""""#, 4))
            try c.roundTrip("paramsView", Self.ok(#"{"k":"v","lonely":""}"#, 5))
        }
    }

    @Test("paramAdd with no key is refused")
    func paramAddNoKey() throws {
        try withHerald { h in
            let (c, _) = try h.connectWelcomed()
            try c.roundTrip("paramAdd", #"{"status":"a parameter is required","context":"response","data":null,"messageCount":1}"#)
            try c.roundTrip("paramsView", Self.ok("{}", 2))
        }
    }

    @Test("paramView: the value, or OK with no data key when missing")
    func paramView() throws {
        try withHerald { h in
            let (c, _) = try h.connectWelcomed()
            try c.roundTrip("paramView missing", #"{"status":"OK","context":"response","messageCount":1}"#)
            try c.roundTrip("paramAdd present=yes", Self.ok("null", 2))
            try c.roundTrip("paramView present", Self.ok(#""yes""#, 3))
        }
    }

    @Test("paramDelete: OK/null, also for an absent key")
    func paramDelete() throws {
        try withHerald { h in
            let (c, _) = try h.connectWelcomed()
            try c.roundTrip("paramAdd a=1", Self.ok("null", 1))
            try c.roundTrip("paramDelete a", Self.ok("null", 2))
            try c.roundTrip("paramView a", #"{"status":"OK","context":"response","messageCount":3}"#)
            try c.roundTrip("paramDelete a", Self.ok("null", 4))
            try c.roundTrip("paramDelete neverSet", Self.ok("null", 5))
            try c.roundTrip("paramsView", Self.ok("{}", 6))
        }
    }

    @Test("paramsView: starts {}, insertion order, an update keeps its place")
    func paramsViewOrder() throws {
        try withHerald { h in
            let (c, _) = try h.connectWelcomed()
            try c.roundTrip("paramsView", Self.ok("{}", 1))
            try c.roundTrip("paramAdd zeta=1", Self.ok("null", 2))
            try c.roundTrip("paramAdd alpha=2", Self.ok("null", 3))
            try c.roundTrip("paramAdd mid=3", Self.ok("null", 4))
            try c.roundTrip("paramAdd zeta=4", Self.ok("null", 5))
            try c.roundTrip("paramsView", Self.ok(#"{"zeta":"4","alpha":"2","mid":"3"}"#, 6))
            try c.roundTrip("paramDelete zeta", Self.ok("null", 7))
            try c.roundTrip("paramAdd zeta=5", Self.ok("null", 8))
            try c.roundTrip("paramsView", Self.ok(#"{"alpha":"2","mid":"3","zeta":"5"}"#, 9))
        }
    }

    @Test("paramsDelete clears every sticky param")
    func paramsDelete() throws {
        try withHerald { h in
            let (c, _) = try h.connectWelcomed()
            try c.roundTrip("paramAdd a=1", Self.ok("null", 1))
            try c.roundTrip("randomNumber", #"{"randomNumber":<NUM>,"context":"response","messageCount":2}"#)
            try c.roundTrip("paramsView", Self.ok(#"{"a":"1","action":"randomNumber"}"#, 3))
            try c.roundTrip("paramsDelete", Self.ok("null", 4))
            try c.roundTrip("paramsView", Self.ok("{}", 5))
        }
    }

    @Test("verbs are case-sensitive: another case is an action request")
    func caseSensitive() throws {
        try withHerald { h in
            let (c, _) = try h.connectWelcomed()
            try c.roundTrip("ParamsView", #"{"error":"Error: ParamsView is not a known action.","context":"response","messageCount":1}"#)
            try c.roundTrip("QUIT", #"{"error":"Error: QUIT is not a known action.","context":"response","messageCount":2}"#)
        }
    }

    @Test("roomAdd: true; already a member and no room are refused with false", arguments: ["roomAdd", "listenToRoom"])
    func roomAdd(verb: String) throws {
        try withHerald { h in
            let (c, _) = try h.connectWelcomed()
            try c.roundTrip("\(verb) r1", Self.ok("true", 1))
            try c.roundTrip("\(verb) r1", #"{"status":"connection already in this room","context":"response","data":false,"messageCount":2}"#)
            try c.roundTrip("\(verb) defaultRoom", #"{"status":"connection already in this room","context":"response","data":false,"messageCount":3}"#)
            try c.roundTrip(verb, #"{"status":"a room is required","context":"response","data":false,"messageCount":4}"#)
            try c.send("detailsView")
            try c.expect(#"{"status":"OK","context":"response","data":{"id":"<UUID>","remoteIP":"127.0.0.1","remotePort":<INT>,"params":{},"connectedAt":<INT>,"room":"defaultRoom","rooms":["defaultRoom","r1"],"totalActions":0,"pendingActions":0},"messageCount":5}"#)
        }
    }

    @Test("roomLeave: true; not a member is refused with false", arguments: ["roomLeave", "silenceRoom"])
    func roomLeave(verb: String) throws {
        try withHerald { h in
            let (c, _) = try h.connectWelcomed()
            try c.roundTrip("roomAdd r1", Self.ok("true", 1))
            try c.roundTrip("\(verb) r1", Self.ok("true", 2))
            try c.roundTrip("\(verb) r1", #"{"status":"connection not in this room","context":"response","data":false,"messageCount":3}"#)
            try c.roundTrip("\(verb) neverJoined", #"{"status":"connection not in this room","context":"response","data":false,"messageCount":4}"#)
            try c.roundTrip("\(verb) defaultRoom", Self.ok("true", 5))
            try c.send("detailsView")
            try c.expect(#"{"status":"OK","context":"response","data":{"id":"<UUID>","remoteIP":"127.0.0.1","remotePort":<INT>,"params":{},"connectedAt":<INT>,"rooms":[],"totalActions":0,"pendingActions":0},"messageCount":6}"#)
        }
    }

    @Test("roomChange leaves every room, then joins the new one")
    func roomChange() throws {
        try withHerald { h in
            let (c, id) = try h.connectWithId()
            try c.roundTrip("roomAdd r1", Self.ok("true", 2))
            try c.roundTrip("roomAdd r2", Self.ok("true", 3))
            try c.roundTrip("roomChange r3", Self.ok("true", 4))
            try c.send("detailsView")
            try c.expect(#"{"status":"OK","context":"response","data":{"id":"<UUID>","remoteIP":"127.0.0.1","remotePort":<INT>,"params":{},"connectedAt":<INT>,"room":"r3","rooms":["r3"],"totalActions":0,"pendingActions":0},"messageCount":5}"#)
            try c.roundTrip("roomView defaultRoom", #"{"status":"not member of room defaultRoom","context":"response","messageCount":6}"#)
            let caps = try c.roundTrip("roomView", #"{"status":"OK","context":"response","data":{"room":"r3","members":{"<UUID>":{"id":"<UUID>","joinedAt":<INT>}},"membersCount":1},"messageCount":7}"#)
            try check(caps[0] == id, "the member of r3 must be the connection itself")
            // Changing to a room it is already in: leave all, join it again.
            try c.roundTrip("roomAdd r4", Self.ok("true", 8))
            try c.roundTrip("roomChange r3", Self.ok("true", 9))
            try c.send("detailsView")
            try c.expect(#"{"status":"OK","context":"response","data":{"id":"<UUID>","remoteIP":"127.0.0.1","remotePort":<INT>,"params":{},"connectedAt":<INT>,"room":"r3","rooms":["r3"],"totalActions":0,"pendingActions":0},"messageCount":10}"#)
        }
    }

    @Test("roomView: the current room by default, a named room, members with joinedAt, refusal without data")
    func roomView() throws {
        try withHerald { h in
            let before = nowMs()
            let (a, aId) = try h.connectWithId()
            let caps = try a.roundTrip("roomView", #"{"status":"OK","context":"response","data":{"room":"defaultRoom","members":{"<UUID>":{"id":"<UUID>","joinedAt":<INT>}},"membersCount":1},"messageCount":2}"#)
            try check(caps[0] == aId && caps[1] == aId, "the only member must be the connection itself")
            let joinedAt = Int64(caps[2]) ?? 0
            try check(joinedAt >= before - 1000 && joinedAt <= nowMs() + 1000, "joinedAt \(joinedAt) is not the join time")
            try a.roundTrip("roomView elsewhere", #"{"status":"not member of room elsewhere","context":"response","messageCount":3}"#)
            try a.roundTrip("roomAdd shared", Self.ok("true", 4))
            let (b, bId) = try h.connectWithId()
            try b.roundTrip("roomAdd shared", Self.ok("true", 2))
            try a.send("roomView shared")
            let view = try a.readJSON()
            try check(view.keys == ["status", "context", "data", "messageCount"], "reply keys: \(view)")
            let data = view["data"]
            try check(data?.keys == ["room", "members", "membersCount"], "data keys must be room, members, membersCount: \(view)")
            try check(data?["room"]?.stringValue == "shared" && data?["membersCount"]?.intValue == 2, "room shared with 2 members: \(view)")
            try check(Set(data?["members"]?.keys ?? []) == [aId, bId], "members must be a and b: \(view)")
            for id in [aId, bId] {
                let member = data?["members"]?[id]
                try check(member?.keys == ["id", "joinedAt"] && member?["id"]?.stringValue == id && member?["joinedAt"]?.intValue != nil,
                          "member \(id) must be {\"id\",\"joinedAt\"}: \(view)")
            }
        }
    }

    @Test("roomView without a room names the first joined room still held")
    func roomViewCurrentRoom() throws {
        try withHerald { h in
            let (c, _) = try h.connectWelcomed()
            try c.roundTrip("roomAdd second", Self.ok("true", 1))
            try c.roundTrip("roomAdd third", Self.ok("true", 2))
            try c.roundTrip("roomView", #"{"status":"OK","context":"response","data":{"room":"defaultRoom",<ANY>"#)
            try c.roundTrip("roomLeave defaultRoom", Self.ok("true", 4))
            try c.roundTrip("roomView", #"{"status":"OK","context":"response","data":{"room":"second","members":{<ANY>},"membersCount":1},"messageCount":5}"#)
            try c.send("detailsView")
            try c.expect(#"{"status":"OK","context":"response","data":{<ANY>"room":"second","rooms":["second","third"],"totalActions":0,"pendingActions":0},"messageCount":6}"#)
        }
    }

    @Test("detailsView: exact key order and values")
    func detailsView() throws {
        try withHerald { h in
            let (c, _) = try h.connectWelcomed()
            try c.send("detailsView")
            let first = try c.expect(#"{"status":"OK","context":"response","data":{"id":"<UUID>","remoteIP":"127.0.0.1","remotePort":<INT>,"params":{},"connectedAt":<INT>,"room":"defaultRoom","rooms":["defaultRoom"],"totalActions":0,"pendingActions":0},"messageCount":1}"#)
            try c.roundTrip("paramAdd name=evan", Self.ok("null", 2))
            try c.roundTrip("randomNumber", #"{"randomNumber":<NUM>,"context":"response","messageCount":3}"#)
            try c.roundTrip("roomAdd extra", Self.ok("true", 4))
            try c.send("detailsView")
            let second = try c.expect(#"{"status":"OK","context":"response","data":{"id":"<UUID>","remoteIP":"127.0.0.1","remotePort":<INT>,"params":{"name":"evan","action":"randomNumber"},"connectedAt":<INT>,"room":"defaultRoom","rooms":["defaultRoom","extra"],"totalActions":1,"pendingActions":0},"messageCount":5}"#)
            try check(first[0] == second[0] && first[1] == second[1] && first[2] == second[2],
                      "id, remotePort and connectedAt must not change: \(first) vs \(second)")
        }
    }

    @Test("documentation: actions → versions → {name, version, description, inputs, outputExample}")
    func documentation() throws {
        try withHerald { h in
            let (c, _) = try h.connectWelcomed()
            try c.send("documentation")
            let line = try c.readLine()
            try expectLine(line, #"{"status":"OK","context":"response","data":{<ANY>},"messageCount":1}"#)
            let reply = try JSON.parse(line)
            guard let actions = reply["data"]?.members else {
                throw HarnessError.mismatch("documentation data must be an object: \(line)")
            }
            let names = Set(actions.map(\.key))
            for builtIn in ["randomNumber", "cacheTest", "sleepTest", "status", "showDocumentation"] {
                try check(names.contains(builtIn), "documentation lacks \(builtIn): \(names.sorted())")
            }
            for action in actions {
                guard let versions = action.value.members, !versions.isEmpty else {
                    throw HarnessError.mismatch("\(action.key) must map to a non-empty object of versions: \(action.value)")
                }
                for version in versions {
                    let doc = version.value
                    try check(doc.keys == ["name", "version", "description", "inputs", "outputExample"],
                              "\(action.key)/\(version.key) keys must be name, version, description, inputs, outputExample in order: \(doc.keys)")
                    try check(doc["name"]?.stringValue == action.key, "\(action.key)/\(version.key): name must be the action's name: \(doc)")
                    try check(doc["description"]?.stringValue != nil, "\(action.key)/\(version.key): description must be a string: \(doc)")
                }
            }
        }
    }
}
