import Testing
import HeraldProtocol

@Suite struct PlainRequests {
    @Test(arguments: Verb.allCases)
    func everyVerbWithoutArguments(verb: Verb) {
        #expect(request(verb.rawValue) == .verb(verb, arguments: ""))
    }

    @Test(arguments: Verb.allCases)
    func everyVerbWithArguments(verb: Verb) {
        #expect(request(verb.rawValue + " some args=x y") == .verb(verb, arguments: "some args=x y"))
    }

    @Test func argumentsAreEverythingAfterTheVerbAndOneSpace() {
        #expect(request("say  two spaces") == .verb(.say, arguments: " two spaces"))
        #expect(request("say ") == .verb(.say, arguments: ""))
        #expect(request("paramAdd key=a = b ") == .verb(.paramAdd, arguments: "key=a = b "))
        #expect(request("say\thi") == .action(name: "say\thi"))   // only a space splits
        #expect(request("say hé😀") == .verb(.say, arguments: "hé😀"))
    }

    @Test func verbsAreCaseSensitive() {
        #expect(request("QUIT") == .action(name: "QUIT"))
        #expect(request("paramadd a=b") == .action(name: "paramadd"))
        #expect(request("quitx") == .action(name: "quitx"))
        #expect(request("qui") == .action(name: "qui"))
    }

    @Test func actions() {
        #expect(request("randomNumber") == .action(name: "randomNumber"))
        #expect(request("cacheTest extra words") == .action(name: "cacheTest"))
        #expect(request(" randomNumber") == .action(name: ""))
        #expect(request(" ") == .action(name: ""))
        #expect(request("é") == .action(name: "é"))
        #expect(request("[1]") == .action(name: "[1]"))
    }

    @Test func verbLookup() {
        for verb in Verb.allCases {
            #expect(Array(verb.rawValue.utf8).withUnsafeBytes { RequestParser.verb($0) } == verb)
        }
        #expect(Array("documentatio".utf8).withUnsafeBytes { RequestParser.verb($0) } == nil)
        #expect([UInt8]().withUnsafeBytes { RequestParser.verb($0) } == nil)
    }

    @Test func invalidUTF8AnywhereIsBad() {
        let bad = Request.bad("Error: the request is not valid UTF-8")
        #expect(request([0xFF]) == bad)
        #expect(request(Array("randomNumber ".utf8) + [0xC3]) == bad)
        #expect(request(Array("say hi ".utf8) + [0xED, 0xA0, 0x80]) == bad)
        #expect(request(Array("x".utf8) + [0xC0, 0xAF]) == bad)
        #expect(request([0x7B, 0x22, 0xFF]) == bad)   // a "{" line too
        #expect(request(Array("{\"action\":\"a\",\"p\":\"".utf8) + [0xFE] + Array("\"}".utf8)) == bad)
    }
}

@Suite struct JSONRequests {
    @Test func actionWithoutParams() {
        #expect(request(#"{"action":"randomNumber"}"#) == .jsonAction(name: "randomNumber", params: nil))
    }

    @Test func actionWithParamsKeepsTheirOrderAndTypes() {
        let r = request(#"{"params":{"value":"v","key":"k","n":5},"action":"cacheTest","other":1}"#)
        #expect(r == .jsonAction(name: "cacheTest", params: ["value": "v", "key": "k", "n": 5]))
        if case .jsonAction(_, let params?) = r { #expect(params.keys == ["value", "key", "n"]) }
    }

    @Test func emptyParamsObject() {
        #expect(request(#"{"action":"a","params":{}}"#) == .jsonAction(name: "a", params: JSONObject()))
    }

    @Test func emptyActionNameIsNotBad() {
        #expect(request(#"{"action":""}"#) == .jsonAction(name: "", params: nil))
    }

    @Test func duplicateActionKeyLastWins() {
        #expect(request(#"{"action":"a","action":"b"}"#) == .jsonAction(name: "b", params: nil))
    }

    @Test func notValidJSON() {
        #expect(request("{") == .bad("Error: the request is not valid JSON (unexpected end of input)"))
        #expect(request(#"{"action":"a",}"#)
            == .bad("Error: the request is not valid JSON (expected a string key)"))
        #expect(request(#"{"action":"a"} x"#)
            == .bad("Error: the request is not valid JSON (unexpected data after the value)"))
        #expect(request("{action:1}") == .bad("Error: the request is not valid JSON (expected a string key)"))
        let deep = "{\"a\":" + String(repeating: "[", count: 100)
        #expect(request(deep) == .bad("Error: the request is not valid JSON (nesting deeper than 64)"))
    }

    @Test func missingOrNonStringAction() {
        let bad = Request.bad("Error: a JSON request needs an action name")
        #expect(request("{}") == bad)
        #expect(request(#"{"params":{}}"#) == bad)
        #expect(request(#"{"action":null}"#) == bad)
        #expect(request(#"{"action":5}"#) == bad)
        #expect(request(#"{"action":["a"]}"#) == bad)
        #expect(request(#"{"action":{"name":"a"}}"#) == bad)
        #expect(request(#"{"action":true,"params":7}"#) == bad)   // action is checked first
    }

    @Test func paramsMustBeAnObject() {
        let bad = Request.bad("Error: params must be a JSON object")
        for params in ["null", "1", "\"x\"", "[]", "[{}]", "true"] {
            #expect(request(#"{"action":"a","params":"# + params + "}") == bad, "params \(params)")
        }
    }

    @Test func leadingSpaceBeforeBraceIsAPlainLine() {
        #expect(request(#" {"action":"a"}"#) == .action(name: ""))
    }
}
