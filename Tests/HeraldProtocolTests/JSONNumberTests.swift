import Testing
import HeraldProtocol

@Suite struct JSONNumberWriting {
    /// Expected values are Node's `JSON.stringify` output.
    @Test(arguments: [
        (0.4977603426668793, "0.4977603426668793"),
        (5000, "5000"),
        (1368918936984, "1368918936984"),
        (-0.0, "0"),
        (0, "0"),
        (1e21, "1e+21"),
        (1e-7, "1e-7"),
        (1.5e-7, "1.5e-7"),
        (123e-20, "1.23e-18"),
        (0.1, "0.1"),
        (1.0 / 3, "0.3333333333333333"),
        (Double.greatestFiniteMagnitude, "1.7976931348623157e+308"),
        (9007199254740992, "9007199254740992"),
        (-9223372036854775808, "-9223372036854776000"),
        (9223372036854775808, "9223372036854776000"),
        (1e20, "100000000000000000000"),
        (123456789012345683968, "123456789012345680000"),
        (1.2345678901234567e25, "1.2345678901234566e+25"),
        (-1.5, "-1.5"),
        (Double.leastNonzeroMagnitude, "5e-324"),
        (1e-6, "0.000001"),
        (0.000001234, "0.000001234"),
        (1e-5, "0.00001"),
        (18446744073709551616, "18446744073709552000"),
        (999999999999999868928, "999999999999999900000"),
        (1e16, "10000000000000000"),
        (4.35, "4.35"),
        (100, "100"),
        (-9007199254740994, "-9007199254740994"),
        (0.1 + 0.2, "0.30000000000000004"),
        (9007199254740994, "9007199254740994"),
        (1e301, "1e+301"),
        (-1e-7, "-1e-7"),
        (123.456, "123.456"),
        (-42, "-42"),
        (7, "7"),
        (1e15 + 0.5, "1000000000000000.5"),
        (2.5e-8, "2.5e-8"),
        (1.7976931348623157e308 / 1e300, "179769313.48623157"),
    ] as [(Double, String)])
    func matchesJavaScript(value: Double, expected: String) {
        #expect(js(value) == expected)
    }

    @Test func nonFiniteIsNull() {
        #expect(js(.nan) == "null")
        #expect(js(.infinity) == "null")
        #expect(js(-.infinity) == "null")
        #expect(written { JSONWriter.write(.number(.nan), to: &$0) } == "null")
    }

    @Test func integersInInt64Range() {
        #expect(js(-(2.0 * 2.0 * 1e15)) == "-4000000000000000")
        #expect(js(Double(Int64.max)) == "9223372036854776000")
        for i in [0, 1, 9, 10, 99, 100, 12345, -1, -10, 1_368_918_936_984, 9_007_199_254_740_991] {
            #expect(js(Double(i)) == String(i))
        }
    }

    @Test func writeIntMatchesDescription() {
        for i in [0, 1, -1, 9, 10, -10, 123456789, Int.max, Int.min, Int(Int32.max), 1_000_000] {
            #expect(written { JSONWriter.writeInt(i, to: &$0) } == String(i))
        }
    }

    @Test func appendsWithoutDisturbingExistingBytes() {
        var out: [UInt8] = Array("x=".utf8)
        JSONWriter.writeNumber(0.5, to: &out)
        JSONWriter.writeInt(-7, to: &out)
        JSONWriter.writeNumber(1e-7, to: &out)
        #expect(String(decoding: out, as: UTF8.self) == "x=0.5-71e-7")
    }

    /// Every finite double must survive write-then-parse unchanged.
    @Test func roundTripsRandomDoubles() throws {
        var rng = SplitMix64(seed: 42)
        for _ in 0..<20_000 {
            let d = Double(bitPattern: rng.next())
            guard d.isFinite else { continue }
            let text = js(d)
            let back = try JSONParser.parse(text)
            #expect(back == .number(d == 0 ? 0 : d), "\(d) -> \(text)")
        }
    }
}

@Suite struct NumberValue {
    @Test(arguments: [
        ("12", 12.0), (" 12 ", 12), ("\t-2.5e-3\n", -0.0025), ("1e3", 1000), (".5", 0.5), ("5.", 5),
        ("+5", 5), ("-0", -0.0), ("0.1", 0.1), ("1000", 1000), ("007", 7), ("1E+2", 100), ("-.5e1", -5),
        ("123456789012345678901234567890", 1.2345678901234568e29), ("1e400", .infinity),
    ] as [(String, Double)])
    func plainDecimalStrings(text: String, expected: Double) {
        let v = JSON.string(text).numberValue
        #expect(v == expected)
        if expected == 0 { #expect(v?.sign == expected.sign) }
    }

    @Test(arguments: ["", " ", "-", "+", ".", "1e", "1e+", "0x10", "1_0", "Infinity", "NaN", "1 2", "abc", "1.2.3", "--1", "e5", "١٢"])
    func otherStringsAreNil(text: String) {
        #expect(JSON.string(text).numberValue == nil)
    }

    @Test func otherCases() {
        #expect(JSON.number(3.5).numberValue == 3.5)
        #expect(JSON.null.numberValue == nil)
        #expect(JSON.bool(true).numberValue == nil)
        #expect(JSON.array([1]).numberValue == nil)
    }
}
