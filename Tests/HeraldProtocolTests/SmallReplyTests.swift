import Testing
@testable import HeraldProtocol

/// The stack-assembled action reply (`ReplyWriter.smallActionReply`) writes what the
/// general writer writes, byte for byte, and steps aside for what it does not handle.
@Suite struct SmallReplyTests {
    /// The general layout, built from JSONWriter alone.
    func expected(_ fields: JSONObject, error: String?, messageCount: Int) -> String {
        var out: [UInt8] = [UInt8(ascii: "{")]
        for (key, value) in fields where key != "error" && key != "context" && key != "messageCount" {
            JSONWriter.writeString(key, to: &out)
            out.append(UInt8(ascii: ":"))
            JSONWriter.write(value, to: &out)
            out.append(UInt8(ascii: ","))
        }
        if let error {
            out.append(contentsOf: Array("\"error\":".utf8))
            JSONWriter.writeString(error, to: &out)
            out.append(UInt8(ascii: ","))
        }
        out.append(contentsOf: Array("\"context\":\"response\",\"messageCount\":\(messageCount)}\r\n".utf8))
        return String(decoding: out, as: UTF8.self)
    }

    @Test func scalarsStringsAndEscapesMatchTheGeneralWriter() {
        let cases: [JSONObject] = [
            ["randomNumber": 0.4977603426668793],
            ["a": 1, "b": -42, "c": 1e21, "d": 1e-7, "e": 0.1, "f": -0.0, "g": 9007199254740993, "h": .null, "i": true, "j": false],
            ["s": "quote\" backslash\\ nl\n tab\t nul\u{0} \u{1f} é 😀 \u{2028}", "": ""],
            ["context": "x", "messageCount": 3, "error": "y", "kept": "z"],
            ["n": .number(.nan), "inf": .number(.infinity), "big": -9223372036854775808, "tiny": .number(.leastNonzeroMagnitude)],
            ["nested": ["a": 1], "list": [1, 2]],
            ["long": .string(String(repeating: "\u{1}", count: 100))],
            ["long": .string(String(repeating: "x", count: 600))],
        ]
        for (index, fields) in cases.enumerated() {
            for error in [nil, "Error: \"quoted\"\n"] as [String?] {
                let count = index * 1_000_003 - 7
                #expect(written { ReplyWriter.actionReply(fields: fields, error: error, messageCount: count, to: &$0) }
                        == expected(fields, error: error, messageCount: count))
            }
        }
    }

    @Test func randomDoublesMatchTheGeneralWriter() {
        var random = SplitMix64(seed: 13)
        for _ in 0..<20_000 {
            let value = Double(bitPattern: random.next())
            let fields: JSONObject = ["v": .number(value), "u": .number(Double(random.next() >> 11) * 0x1p-53)]
            #expect(written { ReplyWriter.actionReply(fields: fields, error: nil, messageCount: 1, to: &$0) }
                    == expected(fields, error: nil, messageCount: 1))
        }
    }

    @Test func writesExponentFormsItself() {
        // Numbers in exponent form, and integers from 2^53 on, are its own (`ShortestDouble`).
        for value in [1e300, -1e-300, 1e21, 9007199254740992, 1.5e-7, Double.leastNonzeroMagnitude] {
            var out: [UInt8] = []
            #expect(ReplyWriter.smallActionReply(fields: ["x": .number(value)], error: nil, messageCount: 1, to: &out))
            #expect(String(decoding: out, as: UTF8.self) == expected(["x": .number(value)], error: nil, messageCount: 1))
        }
    }

    @Test func leavesWhatItCannotWriteToTheGeneralWriter() {
        var out: [UInt8] = [7]
        #expect(!ReplyWriter.smallActionReply(fields: ["x": ["y": 1]], error: nil, messageCount: 1, to: &out))
        #expect(!ReplyWriter.smallActionReply(fields: ["x": .string(String(repeating: "y", count: 600))], error: nil, messageCount: 1, to: &out))
        #expect(out == [7], "nothing appended when it steps aside")
    }
}

/// `RequestParser.parse(_:knownAction:)` answers as `parse(_:)` does.
@Suite struct KnownActionParsing {
    func parse(_ text: String, known: String?) -> Request {
        Array(text.utf8).withUnsafeBytes { RequestParser.parse($0, knownAction: known) }
    }

    @Test func sameAnswersAsWithoutTheKnownName() {
        let lines = ["randomNumber", "randomNumbe", "randomNumberX", "randomNumber x", "say", "say hi", "quit",
                     "{\"action\":\"randomNumber\"}", "héllo", "\u{FF}"]
        for known in [nil, "randomNumber", "say", "quit", "héllo", ""] as [String?] {
            for line in lines {
                #expect(parse(line, known: known) == request(line), "line \(line), known \(known ?? "nil")")
            }
        }
        let invalid: [UInt8] = [0x72, 0xFF]
        #expect(invalid.withUnsafeBytes { RequestParser.parse($0, knownAction: "r\u{FF}") } == request(invalid))
    }
}
