import Testing
import HeraldProtocol

@Suite struct JSONParserAccepts {
    @Test(arguments: [
        ("null", JSON.null), ("true", true), ("false", false), ("0", 0), ("-0", 0), ("1", 1),
        ("-12.5e2", -1250), ("1E+2", 100), ("1e-2", 0.01), ("0.5", 0.5), ("\"\"", ""),
        ("\"a b\"", "a b"), ("[]", []), ("{}", [:]), (" \t\r\n[ 1 , 2 ]\n ", [1, 2]),
        ("{\"a\":{\"b\":[{}]}}", ["a": ["b": [[:]]]]),
        ("1e400", .number(.infinity)), ("-1e400", .number(-.infinity)), ("1e-400", 0),
        ("12345678901234567890", .number(12345678901234567890.0)), ("0.30000000000000004", .number(0.1 + 0.2)),
        ("2.2250738585072011e-308", .number(Double.leastNormalMagnitude.nextDown)),
    ] as [(String, JSON)])
    func values(text: String, expected: JSON) throws {
        #expect(try JSONParser.parse(text) == expected)
    }

    @Test func negativeZeroKeepsItsSign() throws {
        let v = try JSONParser.parse("-0.0")
        #expect(v.numberValue?.sign == .minus)
    }

    @Test func escapes() throws {
        #expect(try JSONParser.parse(#""\"\\\/\b\f\n\r\t""#) == "\"\\/\u{08}\u{0C}\n\r\t")
        #expect(try JSONParser.parse(#""\u0041\u00e9\u20AC""#) == "Aé€")
        #expect(try JSONParser.parse(#""x\u0000y""#) == "x\u{0}y")
        #expect(try JSONParser.parse("\"raw é😀 \u{2028}\"") == "raw é😀 \u{2028}")
    }

    @Test func surrogates() throws {
        #expect(try JSONParser.parse(#""\ud83d\ude00""#) == "😀")
        #expect(try JSONParser.parse(#""\uD83D\uDE00!""#) == "😀!")
        // Lone surrogates become U+FFFD; what follows is kept.
        #expect(try JSONParser.parse(#""\ud83d""#) == "\u{FFFD}")
        #expect(try JSONParser.parse(#""\ude00x""#) == "\u{FFFD}x")
        #expect(try JSONParser.parse(#""\ud83dx""#) == "\u{FFFD}x")
        #expect(try JSONParser.parse(#""\ud83d\u0041""#) == "\u{FFFD}A")
        #expect(try JSONParser.parse(#""\ud83d\ud83d\ude00""#) == "\u{FFFD}😀")
        #expect(try JSONParser.parse(#""\ud83d\n""#) == "\u{FFFD}\n")
    }

    @Test func duplicateKeysLastWinsAtFirstPosition() throws {
        let v = try JSONParser.parse(#"{"a":1,"b":2,"a":3}"#)
        #expect(v.objectValue?.keys == ["a", "b"])
        #expect(v == ["a": 3, "b": 2])
    }

    @Test func duplicateKeysInLargeObjects() throws {
        // Past the size where the parser indexes keys by hash.
        var text = "{"
        for k in 0..<40 { text += "\"k\(k)\":\(k)," }
        text += "\"k3\":\"again\",\"k39\":\"last\",\"new\":true}"
        let o = try #require(try JSONParser.parse(text).objectValue)
        #expect(o.count == 41)
        #expect(o["k3"] == "again")
        #expect(o["k39"] == "last")
        #expect(o.keys.prefix(4) == ["k0", "k1", "k2", "k3"])
        #expect(o.keys.last == "new")
    }

    @Test func manyKeysIsLinear() throws {
        // 100k distinct keys in about 1 MiB: must finish quickly (no quadratic scan).
        var bytes: [UInt8] = Array("{".utf8)
        for k in 0..<100_000 {
            bytes += Array("\"key\(k)\":1,".utf8)
        }
        bytes[bytes.count - 1] = UInt8(ascii: "}")
        let o = try #require(try JSONParser.parse(bytes).objectValue)
        #expect(o.count == 100_000)
    }

    @Test func depthUpToTheLimit() throws {
        let ok = String(repeating: "[", count: 64) + String(repeating: "]", count: 64)
        #expect(throws: Never.self) { try JSONParser.parse(ok) }
        let objects = String(repeating: "{\"a\":", count: 63) + "[]" + String(repeating: "}", count: 63)
        #expect(throws: Never.self) { try JSONParser.parse(objects) }
        #expect(throws: Never.self) { try JSONParser.parse("[[1]]", maxDepth: 2) }
        #expect(throws: JSONError.self) { try JSONParser.parse("[[1]]", maxDepth: 1) }
        #expect(throws: JSONError.self) { try JSONParser.parse("[]", maxDepth: 0) }
        #expect(try JSONParser.parse("1", maxDepth: 0) == 1)
    }

    @Test func inputForms() throws {
        let bytes = Array("{\"x\":[1]}".utf8)
        let fromBytes = try JSONParser.parse(bytes)
        let fromRaw = try bytes.withUnsafeBytes { raw throws(JSONError) in try JSONParser.parse(raw) }
        let fromString = try JSONParser.parse("{\"x\":[1]}")
        #expect(fromBytes == ["x": [1]])
        #expect(fromRaw == fromBytes)
        #expect(fromString == fromBytes)
    }
}

@Suite struct JSONParserRejects {
    func error(_ text: String, maxDepth: Int = 64) -> JSONError? {
        do {
            _ = try JSONParser.parse(text, maxDepth: maxDepth)
            return nil
        } catch {
            return error
        }
    }

    @Test(arguments: [
        "", " ", "[1,]", "{\"a\":1,}", "[,1]", "{,}", "01", "-01", "00", "1.", ".5", "-", "+1", "1e", "1e+",
        "0x10", "NaN", "Infinity", "-Infinity", "nul", "tru", "True", "undefined", "'a'", "\"abc",
        "\"a\\\"", "[1", "[1 2]", "{\"a\" 1}", "{\"a\":}", "{a:1}", "{1:1}", "1 2", "[] []", "\"\\x\"",
        "\"\\u12\"", "\"\\u12G4\"", "\"\\U0041\"", "\"tab\there\"", "\"line\nbreak\"", "/* c */ 1", "[1]x",
        "{\"a\":1", "\u{FEFF}1", "[\"a\",]", "1.0e", "--1", "2.", "\"\u{1F}\"",
    ])
    func invalidText(text: String) {
        #expect(error(text) != nil, "accepted \(text.debugDescription)")
    }

    @Test func invalidUTF8() {
        for bad: [UInt8] in [
            [0x22, 0xFF, 0x22], [0x22, 0xC0, 0x80, 0x22], [0x22, 0xED, 0xA0, 0x80, 0x22],
            [0x22, 0xF4, 0x90, 0x80, 0x80, 0x22], [0x22, 0xE2, 0x82, 0x22], [0x22, 0x80, 0x22],
            [0x22, 0x5C, 0x6E, 0xFE, 0x22], [0xFF], [0x5B, 0xC3, 0xA9, 0x5D],
        ] {
            #expect(throws: JSONError.self) { try JSONParser.parse(bad) }
        }
        #expect(throws: JSONError(message: "invalid UTF-8", offset: 2)) {
            try JSONParser.parse([0x22, 0x61, 0xFF, 0x22] as [UInt8])
        }
    }

    @Test func errorMessagesAndOffsets() {
        #expect(error("") == JSONError(message: "unexpected end of input", offset: 0))
        #expect(error("[1,]") == JSONError(message: "unexpected character ']'", offset: 3))
        #expect(error("[1 2]") == JSONError(message: "expected ',' or ']'", offset: 3))
        #expect(error("{\"a\" 1}") == JSONError(message: "expected ':'", offset: 5))
        #expect(error("{\"a\":1 x") == JSONError(message: "expected ',' or '}'", offset: 7))
        #expect(error("{1:1}") == JSONError(message: "expected a string key", offset: 1))
        #expect(error("1 2") == JSONError(message: "unexpected data after the value", offset: 2))
        #expect(error("\"abc") == JSONError(message: "unterminated string", offset: 0))
        #expect(error("\"\\q\"") == JSONError(message: "invalid escape", offset: 2))
        #expect(error("1.x") == JSONError(message: "invalid number", offset: 2))
        #expect(error("\u{1}") == JSONError(message: "unexpected character 0x01", offset: 0))
        #expect(error("[[[]]]", maxDepth: 2) == JSONError(message: "nesting deeper than 2", offset: 2))
        #expect(JSONError(message: "x", offset: 3).description == "x at offset 3")
    }

    @Test func deepNestingIsAnErrorNotACrash() {
        for open in ["[", "{\"a\":"] {
            let text = String(repeating: open, count: 100_000)
            #expect(error(text)?.message == "nesting deeper than 64")
        }
        // A 1 MiB line of "[" even with a huge limit: still no stack overflow.
        let mib = [UInt8](repeating: UInt8(ascii: "["), count: 1 << 20)
        #expect(throws: JSONError.self) { try JSONParser.parse(mib, maxDepth: Int.max) }
    }
}
