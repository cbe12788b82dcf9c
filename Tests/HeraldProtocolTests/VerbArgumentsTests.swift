import Testing
@testable import HeraldProtocol

/// How verbs split their arguments: one set of rules for the server and HeraldClient.
@Suite struct VerbArgumentsTests {
    @Test("room names and keys are the first word")
    func firstWord() {
        #expect(VerbArguments.firstWord("a b") == "a")
        #expect(VerbArguments.firstWord("lobby") == "lobby")
        #expect(VerbArguments.firstWord("") == "")
        #expect(VerbArguments.firstWord(" a") == "")
    }

    @Test("paramAdd: key=value keeps the rest of the line, key value the second word")
    func paramAdd() {
        #expect(VerbArguments.paramAdd("k=v w")! == ("k", "v w"))
        #expect(VerbArguments.paramAdd("k=")! == ("k", ""))
        #expect(VerbArguments.paramAdd("k v w")! == ("k", "v"))
        #expect(VerbArguments.paramAdd("k")! == ("k", ""))
        #expect(VerbArguments.paramAdd("=v") == nil)
        #expect(VerbArguments.paramAdd("") == nil)
    }

    @Test("say: the first word is the room only when the connection is in it and a message follows")
    func say() {
        let rooms: Set<String> = ["a", "b"]
        #expect(VerbArguments.say("b hello there") { rooms.contains($0) } == ("b", "hello there"))
        #expect(VerbArguments.say("c hello") { rooms.contains($0) } == (nil, "c hello"))
        #expect(VerbArguments.say("b ") { rooms.contains($0) } == (nil, "b "))
        #expect(VerbArguments.say("hello") { rooms.contains($0) } == (nil, "hello"))
    }
}

@Suite struct LineFramerResumeTests {
    @Test("a framer resumed from another's unparsed bytes goes on where it stopped")
    func resume() {
        var first = LineFramer(maxLineBytes: 64)
        var lines: [String] = []
        Array("one\ntwo\nthr".utf8).withUnsafeBytes { chunk in
            first.feedHoldable(chunk) { event in
                if case .line(let line) = event { lines.append(String(decoding: line, as: UTF8.self)) }
                return .hold
            }
        }
        #expect(lines == ["one"])
        #expect(first.unparsed == Array("two\nthr".utf8))
        var second = LineFramer(maxLineBytes: 64, resuming: first.unparsed, discarding: first.isDiscarding)
        second.resume { event in
            if case .line(let line) = event { lines.append(String(decoding: line, as: UTF8.self)) }
            return .proceed
        }
        Array("ee\n".utf8).withUnsafeBytes { chunk in
            second.feedHoldable(chunk) { event in
                if case .line(let line) = event { lines.append(String(decoding: line, as: UTF8.self)) }
                return .proceed
            }
        }
        #expect(lines == ["one", "two", "three"])
        // An unfinished line alone (nothing held) is carried too.
        var partial = LineFramer(maxLineBytes: 64)
        Array("half".utf8).withUnsafeBytes { chunk in partial.feedHoldable(chunk) { _ in .proceed } }
        #expect(partial.unparsed == Array("half".utf8))
    }
}
