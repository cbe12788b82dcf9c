import Testing
@testable import HeraldTestSupport

/// Requests that need Redis, sent the moment a fresh herald serves (its Redis connections
/// still being made): a join, a cache write and a say, each answered OK, and no failed join
/// in the log. For the Sentinel and Cluster tests, whose connects take a question first.
enum RedisAtStart {
    static func expectAnsweredOK(_ server: HeraldProcess, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let (alice, _) = try server.connectWelcomed()
        try alice.send("roomAdd r")
        try alice.send(#"{"action":"cacheTest","params":{"key":"k","value":"v"}}"#)
        try alice.send("say r hello")
        var replies: [Int64: JSON] = [:]
        while replies.count < 3 {
            let line = try alice.readJSON(timeout: 5)
            // (Not her own say: the replies, by messageCount.)
            if line["context"]?.stringValue == "response", let count = line["messageCount"]?.intValue { replies[count] = line }
        }
        #expect(replies[1]?["status"]?.stringValue == "OK" && replies[1]?["data"]?.boolValue == true, "roomAdd: \(replies)",
                sourceLocation: sourceLocation)
        #expect(replies[2]?["cacheTestResults"] != nil, "cacheTest: \(replies)", sourceLocation: sourceLocation)
        #expect(replies[3]?["status"]?.stringValue == "OK", "say: \(replies)", sourceLocation: sourceLocation)
        #expect(!server.stderrText().contains("room.join.failed"), sourceLocation: sourceLocation)
    }
}
