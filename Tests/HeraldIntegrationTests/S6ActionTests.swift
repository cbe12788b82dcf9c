import Foundation
import Glibc
import Testing
@testable import HeraldTestSupport

/// PROTOCOL.md §6: action requests (plain and JSON), replies, errors, limits and the
/// built-in actions. Starts with the seed session replayed line by line.
@Suite("§6 Actions")
struct ActionTests {
    static let cacheResult = #"{"cacheTestResults":{"saveResp":true,"sizeResp":<INT>,"loadResp":{"key":"cacheTest_<STR>","value":<ANY>,"expireTimestamp":<INT>,"createdAt":<INT>,"readAt":<INT>},"deleteResp":true},"context":"response","messageCount":"#

    static func sleepReply(_ duration: Int, _ n: Int) -> String {
        #"{"sleepStarted":<INT>,"sleepEnded":<INT>,"sleepDelta":<INT>,"sleepDuration":\#(duration),"context":"response","messageCount":\#(n)}"#
    }

    /// Checks a cacheTest reply's numbers; returns the parsed reply.
    @discardableResult
    static func checkCacheTest(_ line: String, key: String, value: JSON, n: Int) throws -> JSON {
        try expectLine(line, cacheResult + "\(n)}")
        let reply = try JSON.parse(line)
        let results = reply["cacheTestResults"]
        let load = results?["loadResp"]
        try check(load?["key"]?.stringValue == "cacheTest_\(key)", "loadResp.key must be cacheTest_\(key): \(line)")
        try check(load?["value"] == value, "loadResp.value must be \(value): \(line)")
        let created = load?["createdAt"]?.intValue ?? -1
        try check(load?["expireTimestamp"]?.intValue == created + 5000, "expireTimestamp must be createdAt + 5000: \(line)")
        try check((load?["readAt"]?.intValue ?? -1) >= created, "readAt must not precede createdAt: \(line)")
        try check((results?["sizeResp"]?.intValue ?? 0) >= 1, "sizeResp must count the saved entry: \(line)")
        return reply
    }

    @Test("the seed session, replayed line by line")
    func seedSession() throws {
        try withHerald { h in
            let (listener, _) = try h.connectWelcomed()
            let c = try h.connect()
            try c.expect(#"{"welcome":"Hello! Welcome to the actionhero api","room":"defaultRoom","context":"api"}"#)
            let details = try c.roundTrip("detailsView", #"{"status":"OK","context":"response","data":{"id":"<UUID>","remoteIP":"127.0.0.1","remotePort":<INT>,"params":{},"connectedAt":<INT>,"room":"defaultRoom","rooms":["defaultRoom"],"totalActions":0,"pendingActions":0},"messageCount":1}"#)
            let random = try c.roundTrip("randomNumber", #"{"randomNumber":<NUM>,"context":"response","messageCount":2}"#)
            let x = Double(random[0]) ?? -1
            try check(x >= 0 && x < 1, "randomNumber \(random[0]) must be in [0,1)")
            try c.roundTrip("cacheTest", #"{"error":"Error: key is a required parameter for this action","context":"response","messageCount":3}"#)
            try c.roundTrip("paramAdd key=myKey", #"{"status":"OK","context":"response","data":null,"messageCount":4}"#)
            try c.roundTrip("paramAdd value=myValue", #"{"status":"OK","context":"response","data":null,"messageCount":5}"#)
            try c.roundTrip("paramsView", #"{"status":"OK","context":"response","data":{"action":"cacheTest","key":"myKey","value":"myValue"},"messageCount":6}"#)
            try c.send("cacheTest")
            try Self.checkCacheTest(try c.readLine(), key: "myKey", value: .string("myValue"), n: 7)
            try c.roundTrip("say hooray!", #"{"status":"OK","context":"response","data":null,"messageCount":8}"#)
            let heard = try listener.expect(#"{"message":"hooray!","room":"defaultRoom","from":"<UUID>","context":"user","sentAt":<INT>}"#)
            try check(heard[0] == details[0], "the chat message must come from the seed connection")
        }
    }

    @Test("randomNumber: a double in [0,1), different each time")
    func randomNumber() throws {
        try withHerald { h in
            let (c, _) = try h.connectWelcomed()
            var seen = Set<String>()
            for n in 1...20 {
                let caps = try c.roundTrip("randomNumber", #"{"randomNumber":<NUM>,"context":"response","messageCount":\#(n)}"#)
                let x = Double(caps[0]) ?? -1
                try check(x >= 0 && x < 1, "randomNumber \(caps[0]) must be in [0,1)")
                seen.insert(caps[0])
            }
            try check(seen.count > 15, "20 random numbers should hardly repeat: \(seen.count) distinct")
        }
    }

    @Test("a plain action line stores its name as the sticky param action; extra words are ignored")
    func plainLineStoresAction() throws {
        try withHerald { h in
            let (c, _) = try h.connectWelcomed()
            try c.roundTrip("randomNumber with extra words", #"{"randomNumber":<NUM>,"context":"response","messageCount":1}"#)
            try c.roundTrip("paramsView", #"{"status":"OK","context":"response","data":{"action":"randomNumber"},"messageCount":2}"#)
            try c.roundTrip("unknownThing", #"{"error":"Error: unknownThing is not a known action.","context":"response","messageCount":3}"#)
            try c.roundTrip("paramView action", #"{"status":"OK","context":"response","data":"unknownThing","messageCount":4}"#)
        }
    }

    @Test("sticky params are sent with every later action until changed")
    func stickyParams() throws {
        try withHerald { h in
            let (c, _) = try h.connectWelcomed()
            try c.roundTrip("paramAdd key=k1", #"{"status":"OK","context":"response","data":null,"messageCount":1}"#)
            try c.roundTrip("paramAdd value=v1", #"{"status":"OK","context":"response","data":null,"messageCount":2}"#)
            try c.send("cacheTest")
            try Self.checkCacheTest(try c.readLine(), key: "k1", value: .string("v1"), n: 3)
            try c.roundTrip("paramAdd value=v2", #"{"status":"OK","context":"response","data":null,"messageCount":4}"#)
            try c.send("cacheTest")
            try Self.checkCacheTest(try c.readLine(), key: "k1", value: .string("v2"), n: 5)
            try c.roundTrip("paramDelete key", #"{"status":"OK","context":"response","data":null,"messageCount":6}"#)
            try c.roundTrip("cacheTest", #"{"error":"Error: key is a required parameter for this action","context":"response","messageCount":7}"#)
        }
    }

    @Test("a JSON request runs with exactly its params and leaves the sticky params untouched")
    func jsonRequestParams() throws {
        try withHerald { h in
            let (c, _) = try h.connectWelcomed()
            try c.roundTrip("paramAdd key=stickyKey", #"{"status":"OK","context":"response","data":null,"messageCount":1}"#)
            try c.roundTrip("paramAdd value=stickyValue", #"{"status":"OK","context":"response","data":null,"messageCount":2}"#)
            try c.send(#"{"action":"cacheTest","params":{"key":"jsonKey","value":"jsonValue"}}"#)
            try Self.checkCacheTest(try c.readLine(), key: "jsonKey", value: .string("jsonValue"), n: 3)
            // Not merged: the sticky value is not used when the JSON params lack it.
            try c.roundTrip(#"{"action":"cacheTest","params":{"key":"onlyKey"}}"#, #"{"error":"Error: value is a required parameter for this action","context":"response","messageCount":4}"#)
            // No params at all.
            try c.roundTrip(#"{"action":"cacheTest"}"#, #"{"error":"Error: key is a required parameter for this action","context":"response","messageCount":5}"#)
            try c.roundTrip(#"{"action":"randomNumber","params":{}}"#, #"{"randomNumber":<NUM>,"context":"response","messageCount":6}"#)
            // Sticky params untouched: no "action" stored, nothing changed.
            try c.roundTrip("paramsView", #"{"status":"OK","context":"response","data":{"key":"stickyKey","value":"stickyValue"},"messageCount":7}"#)
        }
    }

    @Test("unknown and empty action names")
    func unknownActions() throws {
        try withHerald { h in
            let (c, _) = try h.connectWelcomed()
            try c.roundTrip("nope", #"{"error":"Error: nope is not a known action.","context":"response","messageCount":1}"#)
            try c.roundTrip(" randomNumber", #"{"error":"Error: {no action} is not a known action.","context":"response","messageCount":2}"#)
            try c.roundTrip(#"{"action":"nope"}"#, #"{"error":"Error: nope is not a known action.","context":"response","messageCount":3}"#)
            try c.roundTrip(#"{"action":""}"#, #"{"error":"Error: {no action} is not a known action.","context":"response","messageCount":4}"#)
            try c.roundTrip(#"{"action":"odd \"name\""}"#, #"{"error":"Error: odd \"name\" is not a known action.","context":"response","messageCount":5}"#)
        }
    }

    @Test("bad JSON requests get an error reply and store or run nothing")
    func badJSONRequests() throws {
        try withHerald { h in
            let (c, _) = try h.connectWelcomed()
            try c.roundTrip(#"{"action":"randomNumber""#, #"{"error":"Error: the request is not valid JSON<STR>","context":"response","messageCount":1}"#)
            try c.roundTrip(#"{action:randomNumber}"#, #"{"error":"Error: the request is not valid JSON<STR>","context":"response","messageCount":2}"#)
            try c.roundTrip(#"{"params":{"key":"k"}}"#, #"{"error":"Error: a JSON request needs an action name","context":"response","messageCount":3}"#)
            try c.roundTrip(#"{"action":42}"#, #"{"error":"Error: a JSON request needs an action name","context":"response","messageCount":4}"#)
            try c.roundTrip(#"{"action":"randomNumber","params":[1,2]}"#, #"{"error":"Error: params must be a JSON object","context":"response","messageCount":5}"#)
            try c.roundTrip(#"{"action":"randomNumber","params":"key=v"}"#, #"{"error":"Error: params must be a JSON object","context":"response","messageCount":6}"#)
            try c.roundTrip("paramsView", #"{"status":"OK","context":"response","data":{},"messageCount":7}"#)
            try c.roundTrip("randomNumber", #"{"randomNumber":<NUM>,"context":"response","messageCount":8}"#)
        }
    }

    @Test("required parameters: missing or empty, reported in declared order (key, then value)")
    func requiredParameters() throws {
        try withHerald { h in
            let (c, _) = try h.connectWelcomed()
            let keyMissing = #"{"error":"Error: key is a required parameter for this action","context":"response","messageCount":"#
            let valueMissing = #"{"error":"Error: value is a required parameter for this action","context":"response","messageCount":"#
            try c.roundTrip(#"{"action":"cacheTest","params":{}}"#, keyMissing + "1}")
            try c.roundTrip(#"{"action":"cacheTest","params":{"value":"v"}}"#, keyMissing + "2}")
            try c.roundTrip(#"{"action":"cacheTest","params":{"key":"k"}}"#, valueMissing + "3}")
            try c.roundTrip(#"{"action":"cacheTest","params":{"key":"","value":"v"}}"#, keyMissing + "4}")
            try c.roundTrip(#"{"action":"cacheTest","params":{"value":"","key":"k"}}"#, valueMissing + "5}")
            try c.roundTrip("paramAdd value=v", #"{"status":"OK","context":"response","data":null,"messageCount":6}"#)
            try c.roundTrip("paramAdd key=", #"{"status":"OK","context":"response","data":null,"messageCount":7}"#)
            try c.roundTrip("cacheTest", keyMissing + "8}")
        }
    }

    @Test("sleepTest: number and numeric-string durations, whole ms, delta = ended - started")
    func sleepTestDurations() throws {
        try withHerald { h in
            let (c, _) = try h.connectWelcomed()
            var n = 0
            func run(_ request: String, expect duration: Int) throws {
                n += 1
                let start = Deadline.now()
                let caps = try c.roundTrip(request, Self.sleepReply(duration, n))
                let elapsed = (Deadline.now() - start) * 1000
                let (started, ended, delta) = (Int64(caps[0]) ?? 0, Int64(caps[1]) ?? 0, Int64(caps[2]) ?? 0)
                try check(delta == ended - started, "sleepDelta must be sleepEnded - sleepStarted: \(caps)")
                try check(delta >= Int64(duration) && delta < Int64(duration) + 1500, "sleepDelta \(delta) for a \(duration) ms sleep")
                try check(elapsed >= Double(duration) - 5, "the reply came after \(elapsed) ms, before the \(duration) ms sleep ended")
                try check(abs(started - nowMs()) < 5000, "sleepStarted \(started) is not a current time in ms")
            }
            try run(#"{"action":"sleepTest","params":{"sleepDuration":120}}"#, expect: 120)
            try run(#"{"action":"sleepTest","params":{"sleepDuration":"130"}}"#, expect: 130)
            n += 1
            try c.roundTrip("paramAdd sleepDuration=140", #"{"status":"OK","context":"response","data":null,"messageCount":\#(n)}"#)
            try run("sleepTest", expect: 140)
        }
    }

    @Test("sleepTest defaults to 1000 ms")
    func sleepTestDefault() throws {
        try withHerald { h in
            let (c, _) = try h.connectWelcomed()
            let caps = try c.roundTrip("sleepTest", Self.sleepReply(1000, 1), timeout: 5)
            try check((Int64(caps[2]) ?? 0) >= 1000, "sleepDelta must be at least 1000: \(caps)")
        }
    }

    @Test("a sleeping action blocks nothing else: other requests and connections are answered meanwhile")
    func sleepDoesNotBlock() throws {
        try withHerald { h in
            let (a, _) = try h.connectWelcomed()
            let (b, _) = try h.connectWelcomed()
            try a.send(#"{"action":"sleepTest","params":{"sleepDuration":1000}}"#)
            let start = Deadline.now()
            try b.roundTrip("randomNumber", #"{"randomNumber":<NUM>,"context":"response","messageCount":1}"#)
            try a.roundTrip("paramsView", #"{"status":"OK","context":"response","data":{},"messageCount":2}"#)
            try check(Deadline.now() - start < 0.7, "other requests waited for the sleep (\(Deadline.now() - start) s)")
            try a.expect(Self.sleepReply(1000, 1))
        }
    }

    @Test("sleepTest 300 ms then randomNumber: randomNumber (messageCount 2) replies first")
    func concurrentOutOfOrder() throws {
        try withHerald { h in
            let (c, _) = try h.connectWelcomed()
            try c.sendRaw("paramAdd sleepDuration=300\r\n")
            try c.expectOK("null", 1)
            try c.sendRaw("sleepTest\r\nrandomNumber\r\n")
            try c.expect(#"{"randomNumber":<NUM>,"context":"response","messageCount":3}"#)
            try c.expect(Self.sleepReply(300, 2))
        }
    }

    @Test("at most simultaneousActions (5) pending: the 6th is refused at once, the others still reply")
    func pendingLimitDefault() throws {
        try withHerald { h in
            let (c, _) = try h.connectWelcomed()
            var batch = ""
            for _ in 0..<5 { batch += #"{"action":"sleepTest","params":{"sleepDuration":700}}"# + "\r\n" }
            batch += "randomNumber\r\n"
            let start = Deadline.now()
            try c.sendRaw(batch)
            try c.expect(#"{"error":"you have too many pending requests","context":"response","messageCount":6}"#)
            try check(Deadline.now() - start < 0.6, "the refusal must come at once, not after the sleeps")
            var counts = Set<Int64>()
            for _ in 0..<5 {
                let caps = try c.expect(#"{"sleepStarted":<INT>,"sleepEnded":<INT>,"sleepDelta":<INT>,"sleepDuration":700,"context":"response","messageCount":<INT>}"#)
                counts.insert(Int64(caps[3]) ?? 0)
            }
            try check(counts == [1, 2, 3, 4, 5], "the five sleeps must reply with messageCounts 1…5: \(counts.sorted())")
            try c.roundTrip("randomNumber", #"{"randomNumber":<NUM>,"context":"response","messageCount":7}"#)
        }
    }

    @Test("simultaneousActions is configurable")
    func pendingLimitConfigured() throws {
        try withHerald(HeraldOptions([("simultaneousActions", "2")])) { h in
            let (c, _) = try h.connectWelcomed()
            let sleep = #"{"action":"sleepTest","params":{"sleepDuration":400}}"#
            try c.sendRaw("\(sleep)\r\n\(sleep)\r\nrandomNumber\r\n")
            try c.expect(#"{"error":"you have too many pending requests","context":"response","messageCount":3}"#)
            try c.expect(#"{"sleepStarted":<INT>,"sleepEnded":<INT>,"sleepDelta":<INT>,"sleepDuration":400,"context":"response","messageCount":<INT>}"#)
            try c.expect(#"{"sleepStarted":<INT>,"sleepEnded":<INT>,"sleepDelta":<INT>,"sleepDuration":400,"context":"response","messageCount":<INT>}"#)
            try c.roundTrip("randomNumber", #"{"randomNumber":<NUM>,"context":"response","messageCount":4}"#)
        }
    }

    @Test("totalActions counts every action request (unknown ones too, not verbs); pendingActions the running ones")
    func actionCounters() throws {
        try withHerald { h in
            let (c, _) = try h.connectWelcomed()
            let details = #"{"status":"OK","context":"response","data":{"id":"<UUID>","remoteIP":"127.0.0.1","remotePort":<INT>,"params":{<ANY>},"connectedAt":<INT>,"room":"defaultRoom","rooms":["defaultRoom"],"totalActions":<INT>,"pendingActions":<INT>},"messageCount":<INT>}"#
            func counters() throws -> (Int, Int) {
                try c.send("detailsView")
                let caps = try c.expect(details)
                return (Int(caps[4]) ?? -1, Int(caps[5]) ?? -1)
            }
            try check(try counters() == (0, 0), "a new connection has run nothing")
            try c.roundTrip("randomNumber", #"{"randomNumber":<NUM>,"context":"response","messageCount":2}"#)
            try c.roundTrip("notAnAction", #"{"error":"Error: notAnAction is not a known action.","context":"response","messageCount":3}"#)
            try c.roundTrip("paramAdd a=b", #"{"status":"OK","context":"response","data":null,"messageCount":4}"#)
            try c.roundTrip("roomAdd r", #"{"status":"OK","context":"response","data":true,"messageCount":5}"#)
            try c.roundTrip("roomLeave r", #"{"status":"OK","context":"response","data":true,"messageCount":6}"#)
            let after = try counters()
            try check(after == (2, 0), "after randomNumber, an unknown action and verbs: totalActions 2, pendingActions 0; got \(after)")
            let sleep = #"{"action":"sleepTest","params":{"sleepDuration":500}}"#
            try c.sendRaw("\(sleep)\r\n\(sleep)\r\n")
            let during = try counters()
            try check(during == (4, 2), "with two sleeps running: totalActions 4, pendingActions 2; got \(during)")
            var finished = Set<String>()
            for _ in 0..<2 {
                let caps = try c.expect(#"{"sleepStarted":<INT>,"sleepEnded":<INT>,"sleepDelta":<INT>,"sleepDuration":500,"context":"response","messageCount":<INT>}"#)
                finished.insert(caps[3])
            }
            try check(finished == ["8", "9"], "the sleeps must reply with messageCounts 8 and 9: \(finished)")
            let end = try counters()
            try check(end == (4, 0), "after the sleeps: totalActions 4, pendingActions 0; got \(end)")
        }
    }

    @Test("100 sticky params are accepted and all sent with a request")
    func hundredStickyParams() throws {
        try withHerald { h in
            let (c, _) = try h.connectWelcomed()
            var batch = ""
            for i in 0..<100 { batch += "paramAdd p\(i)=value \(i)\r\n" }
            try c.sendRaw(batch)
            for n in 1...100 { try c.expectOK("null", n) }
            try c.send("paramsView")
            let reply = try c.readJSON()
            try check(reply["data"]?.keys == (0..<100).map { "p\($0)" }, "all 100 params in order: \(reply)")
            try check(reply["data"]?["p57"]?.stringValue == "value 57", "values kept: \(reply)")
            try c.roundTrip("randomNumber", #"{"randomNumber":<NUM>,"context":"response","messageCount":102}"#)
        }
    }

    @Test("more than maxStickyParams sticky params is refused with an error reply, not a close")
    func stickyParamLimit() throws {
        try withHerald(HeraldOptions([("maxStickyParams", "3")])) { h in
            let (c, _) = try h.connectWelcomed()
            for (n, key) in ["a", "b", "c"].enumerated() {
                try c.roundTrip("paramAdd \(key)=1", #"{"status":"OK","context":"response","data":null,"messageCount":\#(n + 1)}"#)
            }
            try c.roundTrip("paramAdd d=1", #"{"status":"too many params (3 max)","context":"response","data":null,"messageCount":4}"#)
            try c.roundTrip("paramAdd a=2", #"{"status":"OK","context":"response","data":null,"messageCount":5}"#)
            try c.roundTrip("paramsView", #"{"status":"OK","context":"response","data":{"a":"2","b":"1","c":"1"},"messageCount":6}"#)
        }
    }

    @Test("a 500 KB param value is accepted, sticky and in JSON")
    func bigParamValue() throws {
        try withHerald { h in
            let (c, _) = try h.connectWelcomed()
            let big = String(repeating: "0123456789abcdef", count: 32_000)  // 512,000 bytes
            try c.roundTrip("paramAdd big=" + big, #"{"status":"OK","context":"response","data":null,"messageCount":1}"#)
            try c.send("paramView big")
            let reply = try c.readJSON(timeout: 10)
            try check(reply["data"]?.stringValue == big, "the 500 KB value must come back whole (got \(reply["data"]?.stringValue?.utf8.count ?? -1) bytes)")
            try c.send(#"{"action":"cacheTest","params":{"key":"big","value":""# + big + #""}}"#)
            try Self.checkCacheTest(try c.readLine(timeout: 10), key: "big", value: .string(big), n: 3)
        }
    }

    @Test("numeric inputs read from numbers or numeric strings; JSON values keep their type")
    func cacheTestValueTypes() throws {
        try withHerald { h in
            let (c, _) = try h.connectWelcomed()
            try c.send(#"{"action":"cacheTest","params":{"key":"n","value":"12"}}"#)
            try Self.checkCacheTest(try c.readLine(), key: "n", value: .string("12"), n: 1)
            try c.roundTrip(#"{"action":"sleepTest","params":{"sleepDuration":"50"}}"#, Self.sleepReply(50, 2))
            try c.roundTrip(#"{"action":"sleepTest","params":{"sleepDuration":60}}"#, Self.sleepReply(60, 3))
        }
    }

    @Test("status: id, uptime, stats first")
    func status() throws {
        try withHerald { h in
            let (c, _) = try h.connectWelcomed()
            try c.send("status")
            let line = try c.readLine()
            try expectLine(line, #"{"id":<ANY>,"uptime":<INT>,"stats":{<ANY>"context":"response","messageCount":1}"#)
            let reply = try JSON.parse(line)
            let keys = reply.keys
            try check(Array(keys.prefix(3)) == ["id", "uptime", "stats"], "status must start with id, uptime, stats: \(keys)")
            try check(Array(keys.suffix(2)) == ["context", "messageCount"], "status must end with context, messageCount: \(keys)")
            try check(reply["stats"]?.isObject == true, "stats must be an object: \(line)")
            try check((reply["uptime"]?.intValue ?? -1) >= 0, "uptime must be whole ms: \(line)")
            try check(reply["id"]?.stringValue?.isEmpty == false, "id must be a non-empty server id: \(line)")
        }
    }

    @Test("showDocumentation returns the documentation verb's data")
    func showDocumentation() throws {
        try withHerald { h in
            let (c, _) = try h.connectWelcomed()
            try c.send("documentation")
            let verb = try c.readJSON()
            try c.send("showDocumentation")
            let line = try c.readLine()
            try expectLine(line, #"{"documentation":{<ANY>},"context":"response","messageCount":2}"#)
            let action = try JSON.parse(line)
            try check(action["documentation"] == verb["data"], "showDocumentation must equal the documentation verb's data")
        }
    }
}
