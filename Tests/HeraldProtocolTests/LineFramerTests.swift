import Testing
import HeraldProtocol

/// What a framer reported, as text (lines) or a marker (too long).
enum Framed: Equatable, CustomStringConvertible {
    case line(String)
    case tooLong

    var description: String {
        switch self {
        case .line(let s): return s.debugDescription
        case .tooLong: return "<tooLong>"
        }
    }
}

extension LineFramer {
    /// Feeds each chunk in turn and collects the events.
    mutating func collect(_ chunks: [[UInt8]], stopAfter: Int = .max) -> [Framed] {
        var events: [Framed] = []
        for chunk in chunks {
            chunk.withUnsafeBytes { raw in
                feed(raw) { event in
                    switch event {
                    case .line(let bytes): events.append(.line(String(decoding: bytes, as: UTF8.self)))
                    case .tooLong: events.append(.tooLong)
                    }
                    return events.count < stopAfter
                }
            }
        }
        return events
    }

    mutating func collect(_ chunks: String..., stopAfter: Int = .max) -> [Framed] {
        collect(chunks.map { Array($0.utf8) }, stopAfter: stopAfter)
    }
}

@Suite struct LineFramerSplitting {
    let sample = Array("a\r\nb\nc\rd".utf8)
    let expected: [Framed] = [.line("a"), .line("b"), .line("c")]

    @Test func wholeChunk() {
        var f = LineFramer(maxLineBytes: 100)
        #expect(f.collect([sample]) == expected)
        #expect(f.bufferedByteCount == 1)   // "d" waits for its terminator
        #expect(f.collect("\n") == [.line("d")])
        #expect(f.bufferedByteCount == 0)
    }

    @Test func oneByteAtATime() {
        var f = LineFramer(maxLineBytes: 100)
        #expect(f.collect(sample.map { [$0] }) == expected)
        #expect(f.bufferedByteCount == 1)
        #expect(f.collect("\r") == [.line("d")])
    }

    @Test func everyTwoWaySplit() {
        for cut in 0...sample.count {
            var f = LineFramer(maxLineBytes: 100)
            let events = f.collect([Array(sample[..<cut]), Array(sample[cut...])])
            #expect(events == expected, "cut at \(cut)")
            #expect(f.bufferedByteCount == 1, "cut at \(cut)")
        }
    }

    @Test func everyThreeWaySplit() {
        for a in 0...sample.count {
            for b in a...sample.count {
                var f = LineFramer(maxLineBytes: 100)
                let events = f.collect([Array(sample[..<a]), Array(sample[a..<b]), Array(sample[b...])])
                #expect(events == expected, "cuts at \(a), \(b)")
            }
        }
    }

    @Test func loneCRThenLFInALaterRead() {
        var f = LineFramer(maxLineBytes: 100)
        #expect(f.collect("quit\r") == [.line("quit")])   // reported without waiting
        #expect(f.collect("\n") == [])                    // just an empty line
        #expect(f.collect("\nroomView\n") == [.line("roomView")])
    }

    @Test func emptyLinesAreIgnored() {
        var f = LineFramer(maxLineBytes: 100)
        #expect(f.collect("\r\n\n\r\r\nx\n\n") == [.line("x")])
        #expect(f.collect("") == [])
    }

    @Test func linesAreNotTrimmed() {
        var f = LineFramer(maxLineBytes: 100)
        #expect(f.collect("  say  hi  \t\n \n") == [.line("  say  hi  \t"), .line(" ")])
    }

    @Test func manyLinesInOneRead() {
        var f = LineFramer(maxLineBytes: 100)
        let text = (0..<500).map { "line\($0)\n" }.joined()
        #expect(f.collect(text) == (0..<500).map { .line("line\($0)") })
    }

    @Test func bytesPassThroughUntouched() {
        var f = LineFramer(maxLineBytes: 100)
        let raw: [UInt8] = [0x00, 0xFF, 0xC3, 0xA9, 0x7B, 0x0A]
        var got: [UInt8] = []
        raw.withUnsafeBytes { chunk in
            f.feed(chunk) { event in
                if case .line(let bytes) = event { got = Array(bytes) }
                return true
            }
        }
        #expect(got == [0x00, 0xFF, 0xC3, 0xA9, 0x7B])
    }

    @Test func lineInsideChunkIsASliceOfTheChunk() {
        var f = LineFramer(maxLineBytes: 100)
        let chunk = Array("abc\ndef\n".utf8)
        chunk.withUnsafeBytes { raw in
            var starts: [UnsafeRawPointer?] = []
            f.feed(raw) { event in
                if case .line(let bytes) = event { starts.append(bytes.baseAddress) }
                return true
            }
            #expect(starts == [raw.baseAddress, raw.baseAddress! + 4])
        }
        #expect(f.bufferCapacity == 0)   // nothing was buffered
    }
}

@Suite struct LineFramerLimits {
    @Test func exactlyMaxIsFine() {
        var f = LineFramer(maxLineBytes: 5)
        #expect(f.collect("12345\n") == [.line("12345")])
        #expect(f.collect("123", "45", "\n") == [.line("12345")])
    }

    @Test func maxPlusOneIsTooLongOnce() {
        var f = LineFramer(maxLineBytes: 5)
        #expect(f.collect("123456\nnext\n") == [.tooLong, .line("next")])
    }

    @Test func tooLongIsReportedAsSoonAsTheLimitIsPassed() {
        var f = LineFramer(maxLineBytes: 5)
        #expect(f.collect("123") == [])
        #expect(f.collect("456") == [.tooLong])   // before any terminator
        #expect(f.bufferedByteCount == 0)
        #expect(f.isDiscarding)
        #expect(f.collect("789", "more and more") == [])   // discarded, not buffered
        #expect(f.bufferedByteCount == 0)
        #expect(f.collect("tail\rok\n") == [.line("ok")])
        #expect(!f.isDiscarding)
    }

    @Test func overLongPartSpanningReadsOneByteAtATime() {
        var f = LineFramer(maxLineBytes: 4)
        let bytes = Array("abcdefgh\nxy\n".utf8)
        #expect(f.collect(bytes.map { [$0] }) == [.tooLong, .line("xy")])
    }

    @Test func everySplitOfAnOverLongLine() {
        let bytes = Array("ok\n0123456789\r\nfine\nzz".utf8)
        for cut in 0...bytes.count {
            var f = LineFramer(maxLineBytes: 4)
            let events = f.collect([Array(bytes[..<cut]), Array(bytes[cut...])])
            #expect(events == [.line("ok"), .tooLong, .line("fine")], "cut at \(cut)")
            #expect(f.bufferedByteCount == 2)
        }
    }

    @Test func overLongLineEndingAtChunkEndWithCR() {
        var f = LineFramer(maxLineBytes: 3)
        #expect(f.collect("abcdef\r", "\nabc\n") == [.tooLong, .line("abc")])
    }

    @Test func bufferedPlusTerminatedPartOverLimit() {
        var f = LineFramer(maxLineBytes: 5)
        #expect(f.collect("abc", "def\nghi\n") == [.tooLong, .line("ghi")])
    }

    @Test func maxOfOne() {
        var f = LineFramer(maxLineBytes: 1)
        #expect(f.collect("a\nbb\nc\n") == [.line("a"), .tooLong, .line("c")])
    }
}

@Suite struct LineFramerControl {
    @Test func bodyReturningFalseDropsTheRestOfTheChunk() {
        var f = LineFramer(maxLineBytes: 100)
        #expect(f.collect("one\ntwo\nthree\npartial", stopAfter: 1) == [.line("one")])
        #expect(f.bufferedByteCount == 0)
        #expect(f.collect("four\n") == [.line("four")])
    }

    @Test func bodyReturningFalseOnABufferedLine() {
        var f = LineFramer(maxLineBytes: 100)
        #expect(f.collect("on") == [])
        #expect(f.collect("e\ntwo\n", stopAfter: 1) == [.line("one")])
        #expect(f.bufferedByteCount == 0)
    }

    @Test func bodyReturningFalseOnTooLong() {
        var f = LineFramer(maxLineBytes: 2)
        #expect(f.collect("abc\nde\n", stopAfter: 1) == [.tooLong])
        #expect(f.collect("fg\n") == [.line("fg")])
    }

    struct Boom: Error {}

    @Test func throwingBodyLeavesACleanFramer() {
        var f = LineFramer(maxLineBytes: 100)
        _ = f.collect("par")
        #expect(throws: Boom.self) {
            try Array("tial\nnext\n".utf8).withUnsafeBytes { raw in
                try f.feed(raw) { _ in throw Boom() }
            }
        }
        #expect(f.bufferedByteCount == 0)
        #expect(f.collect("after\n") == [.line("after")])
    }

    @Test func smallBufferIsKeptLargeBufferIsReleased() {
        var f = LineFramer(maxLineBytes: 1 << 20)
        _ = f.collect("small")
        _ = f.collect("\n")
        #expect(f.bufferCapacity <= LineFramer.retainedCapacityLimit)

        let big = [UInt8](repeating: UInt8(ascii: "x"), count: 100_000)
        #expect(f.collect([big]) == [])
        #expect(f.bufferedByteCount == 100_000)
        #expect(f.bufferCapacity >= 100_000)
        let events = f.collect("\n")
        #expect(events.count == 1)
        #expect(f.bufferedByteCount == 0)
        #expect(f.bufferCapacity == 0)
    }

    @Test func bufferIsReleasedAfterTooLong() {
        var f = LineFramer(maxLineBytes: 50_000)
        let big = [UInt8](repeating: UInt8(ascii: "x"), count: 40_000)
        #expect(f.collect([big, big]) == [.tooLong])
        #expect(f.bufferCapacity == 0)
    }

    @Test func reset() {
        var f = LineFramer(maxLineBytes: 3)
        _ = f.collect("abcdef")
        #expect(f.isDiscarding)
        f.reset()
        #expect(f.collect("ab\n") == [.line("ab")])
    }
}

@Suite struct TelnetBreakDetection {
    func isBreak(_ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { TelnetBreak.isBreak($0) }
    }

    @Test func ctrlDAlone() {
        #expect(isBreak([0x04]))
        #expect(!isBreak([0x04, 0x0A]))
        #expect(!isBreak([0x61, 0x04]))
        #expect(!isBreak([]))
        #expect(!isBreak([0x03]))
    }

    @Test func telnetInterruptProcess() {
        #expect(isBreak([0xFF, 0xF4, 0xFF, 0xFD, 0x06]))
        #expect(isBreak(Array("abc".utf8) + [0xFF, 0xF4, 0xFF, 0xFD, 0x06] + Array("\r\n".utf8)))
        #expect(!isBreak([0xFF, 0xF4, 0xFF, 0xFD]))
        #expect(!isBreak([0xFF, 0xF4, 0xFF, 0xFD, 0x07]))
        #expect(!isBreak(Array("hello\r\n".utf8)))
    }
}
