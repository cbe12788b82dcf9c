import HeraldProtocol

/// The line framer fed the input in arbitrary pieces, and the request parser on every line.
///
/// Input layout: byte 0 picks `maxLineBytes` (1...64, or 4096 when its top bit is set),
/// byte 1 seeds the split of the rest into chunks. Properties: the framer's lines and
/// `.tooLong` events equal a plain reference model (PROTOCOL.md §1), whatever the split;
/// it buffers at most `maxLineBytes`; every line classifies consistently.
enum FramerTarget {
    enum Event: Equatable {
        case line([UInt8])
        case tooLong
    }

    static func run(_ input: UnsafeRawBufferPointer) {
        guard input.count >= 2 else { return }
        let limit = input[0] & 0x80 != 0 ? 4096 : Int(input[0] & 0x3F) + 1
        var seed = UInt64(input[1]) &* 0x9E37_79B9_7F4A_7C15 | 1
        let stream = UnsafeRawBufferPointer(rebasing: input[2...])

        // The reference: \r and \n end lines, empty lines vanish, long ones are one .tooLong.
        var expected: [Event] = []
        var current = 0
        var start = 0
        for (k, b) in stream.enumerated() {
            if b == 0x0A || b == 0x0D {
                if current > limit { expected.append(.tooLong) }
                else if current > 0 { expected.append(.line(Array(stream[start..<k]))) }
                current = 0
                start = k + 1
            } else {
                current += 1
            }
        }
        if current > limit { expected.append(.tooLong) }
        let tail = current > limit ? 0 : current

        var framer = LineFramer(maxLineBytes: limit)
        var got: [Event] = []
        got.reserveCapacity(expected.count)
        var at = 0
        while at < stream.count {
            // xorshift: chunk lengths from 1 byte to the whole rest, mostly short.
            seed ^= seed << 13; seed ^= seed >> 7; seed ^= seed << 17
            let remaining = stream.count - at
            let n = seed & 3 == 0 ? remaining : 1 + Int((seed >> 8) % UInt64(min(remaining, 16)))
            let chunk = UnsafeRawBufferPointer(rebasing: stream[at..<at + n])
            _ = TelnetBreak.isBreak(chunk)
            framer.feed(chunk) { event in
                switch event {
                case .line(let line):
                    if line.isEmpty || line.count > limit { fail("framer: a line of \(line.count) bytes with limit \(limit)") }
                    check(line)
                    got.append(.line(Array(line)))
                case .tooLong:
                    got.append(.tooLong)
                }
                return true
            }
            if framer.bufferedByteCount > limit { fail("framer: \(framer.bufferedByteCount) bytes buffered with limit \(limit)") }
            at += n
        }
        if got != expected { fail("framer: \(got.count) events, the reference has \(expected.count) (limit \(limit))") }
        if framer.bufferedByteCount != tail { fail("framer: \(framer.bufferedByteCount) bytes buffered, expected \(tail)") }
        framer.reset()
        if framer.bufferedByteCount != 0 || framer.isDiscarding { fail("framer: reset left state behind") }
    }

    /// The request parser's classification agrees with the line's bytes.
    static func check(_ line: UnsafeRawBufferPointer) {
        let request = RequestParser.parse(line)
        let space = line.firstIndex(of: UInt8(ascii: " ")) ?? line.count
        let word = UnsafeRawBufferPointer(rebasing: line[0..<space])
        switch request {
        case .bad(let text):
            if !text.hasPrefix("Error: ") { fail("parser: bad-request text without 'Error: ': \(text)") }
        case .verb(let verb, let arguments):
            if line.first == UInt8(ascii: "{") || !word.elementsEqual(verb.rawValue.utf8) {
                fail("parser: verb \(verb) for a line whose first word differs")
            }
            let rest = space < line.count ? Array(line[(space + 1)...]) : []
            if !arguments.utf8.elementsEqual(rest) { fail("parser: the arguments of \(verb) are not the rest of the line") }
        case .action(let name):
            if line.first == UInt8(ascii: "{") || RequestParser.verb(word) != nil || !name.utf8.elementsEqual(word) {
                fail("parser: action name '\(name)' is not the first word")
            }
        case .jsonAction(let name, let params):
            guard line.first == UInt8(ascii: "{"),
                  case .object(let object)? = try? JSONParser.parse(line, maxDepth: RequestParser.maxJSONDepth),
                  object["action"] == .string(name), params.map({ object["params"] == .object($0) }) ?? (object["params"] == nil)
            else { fail("parser: a JSON action that the JSON parser reads differently") }
        }
    }
}
