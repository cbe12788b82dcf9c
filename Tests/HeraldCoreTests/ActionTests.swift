import HeraldProtocol
import Testing
@testable import HeraldCore

@Suite("Actions and their registry")
struct ActionTests {
    // The example of docs/actions.md, compiled here so that the docs cannot drift.
    static let greet = Action(
        name: "greet",
        description: "Greets someone by name",
        version: 1,
        inputs: [.required("name"), .optional("greeting", default: "Hello")],
        outputExample: ["message": "Hello, Ada"]
    ) { call in
        let greeting = call.string("greeting") ?? "Hello"
        guard let name = call.string("name"), name.count <= 100 else {
            throw ActionError("name must be at most 100 characters")
        }
        call.response["message"] = .string("\(greeting), \(name)")
    }

    static let slowEcho = Action(
        name: "slowEcho",
        description: "Echoes `text` after `delay` milliseconds",
        inputs: [.required("text"), .optional("delay", default: 100)]
    ) { call in
        let delay = Int(call.number("delay") ?? 100)
        await call.sleep(milliseconds: min(max(delay, 0), 10_000))
        call.response["text"] = .string(call.string("text") ?? "")
    }

    // The cancellation example of docs/actions.md.
    static let countdown = Action(
        name: "countdown",
        description: "Waits `seconds` seconds, one at a time",
        inputs: [.optional("seconds", default: 10)]
    ) { call in
        var left = min(max(Int(call.number("seconds") ?? 10), 0), 3_600)
        while left > 0 {
            await call.sleep(milliseconds: 1_000)  // returns at once if the client leaves
            try call.checkCancellation()           // …then stop here: nobody reads the reply
            left -= 1
        }
        call.response["waited"] = true
    }

    @Test func aBodyWithoutAwaitIsSynchronous() {
        guard case .async = Self.countdown.body else { Issue.record("countdown should be asynchronous"); return }
        guard case .sync = Self.greet.body else { Issue.record("greet should be synchronous"); return }
        guard case .async = Self.slowEcho.body else { Issue.record("slowEcho should be asynchronous"); return }
    }

    @Test func documentationShapeAndOrder() {
        let registry = ActionRegistry([Self.greet, Self.slowEcho])
        let text = registry.documentation.description
        #expect(text.hasPrefix(#"{"greet":{"1":{"name":"greet","version":1,"description":"Greets someone by name","inputs":{"required":["name"],"optional":["greeting"]},"outputExample":{"message":"Hello, Ada"}}},"slowEcho":"#))
    }

    @Test func registeringANameAgainReplacesIt() {
        var registry = ActionRegistry([Self.greet])
        let replacement = Action(name: "greet", description: "v2", version: 2) { call in call.response["v"] = 2 }
        registry.register(replacement)
        #expect(registry.names == ["greet"])
        #expect(registry["greet"]?.version == 2)
        registry.remove("greet")
        #expect(registry["greet"] == nil)
    }

    @Test func actionErrorsReadLikeActionHero() {
        #expect(ActionError("key is bad").description == "Error: key is bad")
    }
}

@Suite("Verb arguments")
struct VerbArgumentTests {
    @Test(arguments: [
        ("key=value", "key", "value"),
        ("k=a b=c", "k", "a b=c"),
        ("k= spaced  out ", "k", " spaced  out "),
        ("key value more", "key", "value"),
        ("key", "key", ""),
        ("k=", "k", ""),
    ])
    func paramAdd(arguments: String, key: String, value: String) {
        let parsed = Worker.parseParamAdd(arguments)
        #expect(parsed?.0 == key)
        #expect(parsed?.1 == value)
    }

    @Test(arguments: ["", "=value", " value"])
    func paramAddWithoutKey(arguments: String) {
        #expect(Worker.parseParamAdd(arguments) == nil)
    }

    @Test func connectionIDsAreVersion4UUIDs() {
        var random = FastRandom()
        var seen = Set<String>()
        for _ in 0..<1_000 {
            let id = ConnectionID(using: &random).string
            #expect(id.count == 36)
            let parts = id.split(separator: "-")
            #expect(parts.map(\.count) == [8, 4, 4, 4, 12])
            #expect(parts[2].first == "4")
            #expect("89ab".contains(parts[3].first!))
            #expect(id == id.lowercased())
            seen.insert(id)
        }
        #expect(seen.count == 1_000)
    }

    @Test func bufferPoolLendsAndTakesBack() {
        var pool = BufferPool()
        var buffer = pool.take()
        #expect(buffer.isEmpty && buffer.capacity >= 1_024)
        buffer.append([1, 2, 3])
        pool.give(&buffer)
        #expect(!buffer.hasStorage && buffer.capacity == 0, "the connection keeps nothing")
        let again = pool.take()
        #expect(again.isEmpty && again.capacity >= 1_024, "a block comes back empty")
    }

    @Test func outputBufferGrowsWritesInPlaceAndDropsWhatWasSent() {
        var buffer = OutputBuffer()
        #expect(!buffer.hasStorage && buffer.count == 0)
        let bytes = (0..<3_000).map { UInt8(truncatingIfNeeded: $0) }
        buffer.append(Array(bytes[..<1_000]))
        buffer.append(Array(bytes[1_000...]))
        #expect(buffer.count == 3_000 && buffer.capacity >= 3_000)
        #expect(buffer.copy(from: 0) == bytes)
        let written = buffer.appendInPlace(room: 512) { out in
            out[0] = 7; out[1] = 8
            return 2
        }
        #expect(written == 2 && buffer.count == 3_002)
        buffer.removeFirst(2_500)
        #expect(buffer.copy(from: 0) == Array(bytes[2_500...]) + [7, 8])
        #expect(buffer.withBytes(from: 502) { $0.count } == 0)
    }
}

@Suite("file paths")
struct PublicDirectoryPathTests {
    @Test(arguments: [
        ("hello.txt", ["hello.txt"]),
        ("sub/nested.txt", ["sub", "nested.txt"]),
        ("./sub//nested.txt", ["sub", "nested.txt"]),
        ("a/./b", ["a", "b"]),
        ("..hidden", ["..hidden"]),
    ])
    func servable(path: String, parts: [String]) {
        #expect(PublicDirectory.components(of: path) == parts)
    }

    @Test(arguments: ["", "/etc/passwd", "..", "../x", "sub/../x", "a/..", "hello.txt\u{0}zzz", "\u{0}", "sub/", ".", "./", "./."])
    func neverServed(path: String) {
        #expect(PublicDirectory.components(of: path) == nil)
    }
}
