import Testing
import HeraldProtocol

@Suite struct JSONObjectBehaviour {
    @Test func emptyObject() {
        let o = JSONObject()
        #expect(o.isEmpty)
        #expect(o.count == 0)
        #expect(o.keys == [])
        #expect(o["x"] == nil)
    }

    @Test func literalKeepsWrittenOrder() {
        let o: JSONObject = ["z": 1, "a": 2, "m": 3]
        #expect(o.keys == ["z", "a", "m"])
        let j: JSON = ["z": 1, "a": 2]
        #expect(j.objectValue?.keys == ["z", "a"])
    }

    @Test func duplicatePairsReplaceInPlace() {
        let o = JSONObject([("a", 1), ("b", 2), ("a", 3)])
        #expect(o.keys == ["a", "b"])
        #expect(o["a"] == 3)
    }

    @Test func subscriptSetReplacesOrAppends() {
        var o: JSONObject = ["a": 1, "b": 2]
        o["a"] = "x"
        #expect(o.keys == ["a", "b"])
        #expect(o["a"] == "x")
        o["c"] = nil
        #expect(o.count == 2)
        o["c"] = .null
        #expect(o.keys == ["a", "b", "c"])
        #expect(o["c"] == .null)
    }

    @Test func subscriptNilRemovesKeepingOrder() {
        var o: JSONObject = ["a": 1, "b": 2, "c": 3]
        o["b"] = nil
        #expect(o.keys == ["a", "c"])
        #expect(o["b"] == nil)
    }

    @Test func appendAndRemove() {
        var o = JSONObject()
        o.append("one", 1)
        o.append("two", 2)
        o.append("three", 3)
        #expect(o.removeValue(forKey: "two") == 2)
        #expect(o.removeValue(forKey: "two") == nil)
        #expect(o.keys == ["one", "three"])
        o.removeAll()
        #expect(o.isEmpty)
    }

    @Test func sequenceYieldsPairsInOrder() {
        let o: JSONObject = ["a": 1, "b": "x"]
        var seen: [String] = []
        for (key, value) in o {
            seen.append(key + "=" + value.description)
        }
        #expect(seen == ["a=1", "b=\"x\""])
        #expect(o.map(\.key) == ["a", "b"])
        #expect(o.values == [1, "x"])
    }

    @Test func equalityIsOrderSensitive() {
        let ab: JSONObject = ["a": 1, "b": 2]
        let ba: JSONObject = ["b": 2, "a": 1]
        #expect(ab != ba)
        #expect(ab == ["a": 1, "b": 2])
        #expect(ab != ["a": 1, "b": 3])
        #expect(ab != ["a": 1])
    }
}

@Suite struct JSONAccessors {
    @Test func accessors() {
        #expect(JSON.string("s").stringValue == "s")
        #expect(JSON.number(1).stringValue == nil)
        #expect(JSON.object(["a": 1]).objectValue == ["a": 1])
        #expect(JSON.array([]).objectValue == nil)
        #expect(JSON.array([1, 2]).arrayValue == [1, 2])
        #expect(JSON.string("[]").arrayValue == nil)
        #expect(JSON.bool(false).boolValue == false)
        #expect(JSON.string("true").boolValue == nil)
        #expect(JSON.null.isNull)
        #expect(!JSON.bool(false).isNull)
    }

    @Test func literals() {
        let n: JSON = nil
        let b: JSON = true
        let i: JSON = 42
        let f: JSON = 0.5
        let s: JSON = "str"
        let a: JSON = [1, "x"]
        #expect(n == .null)
        #expect(b == .bool(true))
        #expect(i == .number(42))
        #expect(f == .number(0.5))
        #expect(s == .string("str"))
        #expect(a == .array([.number(1), .string("x")]))
    }
}
