import Testing
import HeraldProtocol

/// `feedHoldable` / `resume`: a hold stops after the current line and keeps the rest.
@Suite("LineFramer holds")
struct LineFramerHoldTests {
    /// Feeds `chunks`, holding after every `holdEvery`-th line, resuming until done.
    static func run(_ chunks: [[UInt8]], holdEvery: Int, maxLineBytes: Int = 64) -> [Framed] {
        var framer = LineFramer(maxLineBytes: maxLineBytes)
        var events: [Framed] = []
        func body(_ event: LineFramer.Event) -> LineFramer.Next {
            switch event {
            case .line(let bytes): events.append(.line(String(decoding: bytes, as: UTF8.self)))
            case .tooLong: events.append(.tooLong)
            }
            return events.count % holdEvery == 0 ? .hold : .proceed
        }
        for chunk in chunks {
            chunk.withUnsafeBytes { framer.feedHoldable($0, body) }
            // Sometimes feed again while held: appended, order kept.
            while framer.hasHeldInput && events.count % 3 != 0 { framer.resume(body) }
        }
        while framer.hasHeldInput { framer.resume(body) }
        return events
    }

    @Test func holdKeepsTheRestOfTheChunk() {
        var framer = LineFramer(maxLineBytes: 64)
        var lines: [String] = []
        let chunk = Array("a\nb\nc\nd".utf8)
        chunk.withUnsafeBytes { raw in
            framer.feedHoldable(raw) { event in
                if case .line(let bytes) = event { lines.append(String(decoding: bytes, as: UTF8.self)) }
                return lines.count == 1 ? .hold : .proceed
            }
        }
        #expect(lines == ["a"])
        #expect(framer.hasHeldInput && framer.heldByteCount == 5)
        #expect(!framer.hasPartialLine)
        // More input while held is appended behind the held bytes.
        Array("e\nf\n".utf8).withUnsafeBytes { raw in framer.feedHoldable(raw) { _ in .proceed } }
        #expect(lines == ["a"])
        framer.resume { event in
            if case .line(let bytes) = event { lines.append(String(decoding: bytes, as: UTF8.self)) }
            return .proceed
        }
        #expect(lines == ["a", "b", "c", "de", "f"])
        #expect(!framer.hasHeldInput && framer.bufferedByteCount == 0)
    }

    @Test func holdingNeverLosesOrReorders() {
        var text = ""
        for i in 0..<300 { text += "line\(i)" + (i % 7 == 0 ? "\r\n" : i % 5 == 0 ? "\r" : "\n") }
        text += String(repeating: "y", count: 100) + "\nlast\n"
        let bytes = Array(text.utf8)
        let expected = LineFramerHoldTests.run([bytes], holdEvery: Int.max)
        for split in [1, 3, 17, 64, 1000] {
            var chunks: [[UInt8]] = []
            var i = 0
            while i < bytes.count { chunks.append(Array(bytes[i..<min(bytes.count, i + split)])); i += split }
            for holdEvery in [1, 2, 5, 50] {
                #expect(LineFramerHoldTests.run(chunks, holdEvery: holdEvery) == expected, "split \(split), hold every \(holdEvery)")
            }
        }
        #expect(expected.count == 302 && expected[300] == .tooLong)
    }

    @Test func stopStillDropsTheRest() {
        var framer = LineFramer(maxLineBytes: 64)
        var count = 0
        Array("a\nb\nc\n".utf8).withUnsafeBytes { raw in framer.feedHoldable(raw) { _ in count += 1; return .stop } }
        #expect(count == 1 && !framer.hasHeldInput)
    }

    @Test func linesStartedCountsEachUnfinishedLine() {
        var framer = LineFramer(maxLineBytes: 8)
        func feed(_ text: String) { Array(text.utf8).withUnsafeBytes { raw in framer.feedHoldable(raw) { _ in .proceed } } }
        feed("abc")
        #expect(framer.linesStarted == 1 && framer.hasPartialLine)
        feed("def")  // the same line goes on
        #expect(framer.linesStarted == 1)
        feed("\nxy")  // ends it, starts another
        #expect(framer.linesStarted == 2 && framer.hasPartialLine)
        feed("0123456789")  // too long: discarded, still unfinished
        #expect(framer.linesStarted == 2 && framer.hasPartialLine && framer.isDiscarding)
        feed("\n")
        #expect(!framer.hasPartialLine)
        feed("0123456789abc")  // a new line too long from its first chunk
        #expect(framer.linesStarted == 3 && framer.hasPartialLine)
        framer.reset()
        #expect(!framer.hasPartialLine && !framer.hasHeldInput)
    }
}
