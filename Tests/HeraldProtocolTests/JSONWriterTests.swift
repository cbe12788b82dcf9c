import Testing
import HeraldProtocol

@Suite struct JSONStringWriting {
    func quoted(_ s: String) -> String {
        written { JSONWriter.writeString(s, to: &$0) }
    }

    @Test func plainText() {
        #expect(quoted("") == "\"\"")
        #expect(quoted("hello world") == "\"hello world\"")
    }

    @Test func shortEscapes() {
        #expect(quoted("\"") == #""\"""#)
        #expect(quoted("\\") == #""\\""#)
        #expect(quoted("\u{08}\u{0C}\n\r\t") == #""\b\f\n\r\t""#)
        #expect(quoted("a/b") == "\"a/b\"")   // JSON.stringify leaves "/" alone
    }

    @Test func otherControlCharactersAsLowercaseHex() {
        #expect(quoted("\u{00}") == #""\u0000""#)
        #expect(quoted("\u{01}\u{1F}") == #""\u0001\u001f""#)
        #expect(quoted("\u{0B}") == #""\u000b""#)
        #expect(quoted("\u{1B}[0m") == #""\u001b[0m""#)
        #expect(quoted("\u{7F}") == "\"\u{7F}\"")   // DEL is not escaped
    }

    @Test func everyByteBelowSpace() {
        // Node: JSON.stringify of each control character.
        let short: [UInt8: String] = [8: "\\b", 9: "\\t", 10: "\\n", 12: "\\f", 13: "\\r"]
        let hex = Array("0123456789abcdef".utf8)
        for b in UInt8(0)..<0x20 {
            let expected = short[b] ?? ("\\u00" + String(decoding: [hex[Int(b >> 4)], hex[Int(b & 15)]], as: UTF8.self))
            #expect(quoted(String(decoding: [b], as: UTF8.self)) == "\"" + expected + "\"")
        }
    }

    @Test func nonASCIIIsRawUTF8() {
        #expect(quoted("é😀") == "\"é😀\"")
        #expect(quoted("\u{2028}\u{2029}") == "\"\u{2028}\u{2029}\"")
        var out: [UInt8] = []
        JSONWriter.writeString("😀", to: &out)
        #expect(out == [0x22, 0xF0, 0x9F, 0x98, 0x80, 0x22])
    }

    @Test func mixedRuns() {
        #expect(quoted("say \"hi\"\nto\tall") == #""say \"hi\"\nto\tall""#)
        // Matches Node: JSON.stringify("a\u0000\u001f\b\f\n\r\t\"\\/\u007f\u2028\u2029é😀")
        #expect(quoted("a\u{00}\u{1F}\u{08}\u{0C}\n\r\t\"\\/\u{7F}\u{2028}\u{2029}é😀")
            == "\"a\\u0000\\u001f\\b\\f\\n\\r\\t\\\"\\\\/\u{7F}\u{2028}\u{2029}é😀\"")
    }

    @Test func rawBytesVariant() {
        let text = written { out in
            Array("a\"b".utf8).withUnsafeBytes { JSONWriter.writeString(utf8: $0, to: &out) }
        }
        #expect(text == #""a\"b""#)
    }
}

@Suite struct JSONValueWriting {
    @Test func scalars() {
        #expect(JSON.null.description == "null")
        #expect(JSON.bool(true).description == "true")
        #expect(JSON.bool(false).description == "false")
        #expect(JSON.number(5000).description == "5000")
        #expect(JSON.string("x").description == "\"x\"")
    }

    @Test func containersAreCompactAndOrdered() {
        let value: JSON = ["b": 1, "a": [true, nil, "s", 1.5, [:], []], "c": ["z": 0, "y": -0.0]]
        #expect(value.description == #"{"b":1,"a":[true,null,"s",1.5,{},[]],"c":{"z":0,"y":0}}"#)
    }

    @Test func writeObject() {
        let object: JSONObject = ["randomNumber": 0.4977603426668793]
        #expect(written { JSONWriter.writeObject(object, to: &$0) } == #"{"randomNumber":0.4977603426668793}"#)
        #expect(written { JSONWriter.writeObject(JSONObject(), to: &$0) } == "{}")
    }

    @Test func keysAreEscaped() {
        let object = JSONObject([("a\"b\n", .null)])
        #expect(object.description == #"{"a\"b\n":null}"#)
    }

    @Test func roundTrips() throws {
        let samples: [JSON] = [
            nil, true, false, 0, -1.5, 1e21, "", "é😀\u{2028}\u{0}\u{1F}\"\\",
            [], [:], [1, [2, [3, [:]]]],
            ["action": "cacheTest", "params": ["key": "k", "value": "v"]],
            ["nested": ["a": ["b": ["c": [1, "two", nil, false]]]]],
        ]
        for value in samples {
            let bytes = JSONWriter.bytes(value)
            let back = try JSONParser.parse(bytes)
            #expect(back == value)
            #expect(JSONWriter.bytes(back) == bytes)
        }
    }
}
