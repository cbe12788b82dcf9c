import Foundation
import Testing

/// A server line with placeholders for the parts that vary (ids, times, random
/// numbers). Everything else must match byte for byte, so key order is checked too.
///
/// Placeholders (each is captured, in order):
/// - `<UUID>`: a canonical lowercase version-4 UUID
/// - `<INT>`: a JSON integer
/// - `<NUM>`: any JSON number
/// - `<STR>`: the inside of a JSON string (escapes allowed, no quotes)
/// - `<ANY>`: any text (shortest match first)
struct LinePattern: CustomStringConvertible {
    private enum Token { case literal([UInt8]), uuid, int, num, str, any }
    private let tokens: [Token]
    let description: String

    init(_ pattern: String) {
        description = pattern
        var tokens: [Token] = []
        var literal: [UInt8] = []
        let bytes = Array(pattern.utf8)
        var i = 0
        let names: [(String, Token)] = [("<UUID>", .uuid), ("<INT>", .int), ("<NUM>", .num), ("<STR>", .str), ("<ANY>", .any)]
        outer: while i < bytes.count {
            if bytes[i] == UInt8(ascii: "<") {
                for (name, token) in names where bytes[i...].starts(with: name.utf8) {
                    if !literal.isEmpty { tokens.append(.literal(literal)); literal = [] }
                    tokens.append(token)
                    i += name.utf8.count
                    continue outer
                }
            }
            literal.append(bytes[i])
            i += 1
        }
        if !literal.isEmpty { tokens.append(.literal(literal)) }
        self.tokens = tokens
    }

    /// The captures when `line` matches, else nil.
    func match(_ line: String) -> [String]? {
        var farthest = 0
        return match(Array(line.utf8), &farthest)
    }

    /// Captures, or the byte offset where matching got farthest before failing.
    func match(_ bytes: [UInt8], _ farthest: inout Int) -> [String]? {
        var captures: [String] = []
        return step(0, bytes, 0, &captures, &farthest) ? captures : nil
    }

    private func step(_ t: Int, _ b: [UInt8], _ pos: Int, _ caps: inout [String], _ far: inout Int) -> Bool {
        far = max(far, pos)
        guard t < tokens.count else { return pos == b.count }
        func capture(_ end: Int) -> Bool {
            // The capture text is made only once the rest matched (trying many ends of
            // a long <ANY> must not copy the line each time).
            let index = caps.count
            guard step(t + 1, b, end, &caps, &far) else { return false }
            caps.insert(String(decoding: b[pos..<end], as: UTF8.self), at: index)
            return true
        }
        switch tokens[t] {
        case .literal(let lit):
            guard b.count - pos >= lit.count, b[pos..<(pos + lit.count)].elementsEqual(lit) else {
                var k = 0
                while pos + k < b.count, k < lit.count, b[pos + k] == lit[k] { k += 1 }
                far = max(far, pos + k)
                return false
            }
            return step(t + 1, b, pos + lit.count, &caps, &far)
        case .uuid:
            guard pos + 36 <= b.count, isUUIDv4(Array(b[pos..<(pos + 36)])) else { return false }
            return capture(pos + 36)
        case .int, .num:
            var p = pos
            if p < b.count, b[p] == UInt8(ascii: "-") { p += 1 }
            let digitsStart = p
            while p < b.count, (0x30...0x39).contains(b[p]) { p += 1 }
            guard p > digitsStart else { return false }
            if p - digitsStart > 1, b[digitsStart] == UInt8(ascii: "0") { return false }
            if case .num = tokens[t] {
                if p < b.count, b[p] == UInt8(ascii: ".") {
                    let f = p + 1
                    var q = f
                    while q < b.count, (0x30...0x39).contains(b[q]) { q += 1 }
                    guard q > f else { return false }
                    p = q
                }
                if p < b.count, b[p] == UInt8(ascii: "e") || b[p] == UInt8(ascii: "E") {
                    var q = p + 1
                    if q < b.count, b[q] == UInt8(ascii: "+") || b[q] == UInt8(ascii: "-") { q += 1 }
                    let e = q
                    while q < b.count, (0x30...0x39).contains(b[q]) { q += 1 }
                    guard q > e else { return false }
                    p = q
                }
            }
            return capture(p)
        case .str:
            // Shortest first: the text that follows may itself be string content.
            var p = pos
            while true {
                if capture(p) { return true }
                guard p < b.count, b[p] != UInt8(ascii: "\""), b[p] >= 0x20 else { return false }
                p += b[p] == UInt8(ascii: "\\") ? 2 : 1
                if p > b.count { return false }
            }
        case .any:
            for end in pos...b.count where capture(end) { return true }
            return false
        }
    }
}

/// True for a canonical lowercase version-4 UUID text.
func isUUIDv4(_ text: String) -> Bool { isUUIDv4(Array(text.utf8)) }

private func isUUIDv4(_ b: [UInt8]) -> Bool {
    guard b.count == 36 else { return false }
    for (i, c) in b.enumerated() {
        switch i {
        case 8, 13, 18, 23: if c != UInt8(ascii: "-") { return false }
        case 14: if c != UInt8(ascii: "4") { return false }
        case 19: if !"89ab".utf8.contains(c) { return false }
        default: if !((0x30...0x39).contains(c) || (0x61...0x66).contains(c)) { return false }
        }
    }
    return true
}

/// Checks `line` against `pattern`; returns the captures or throws a message showing
/// both and where they part.
@discardableResult
func expectLine(_ line: String, _ pattern: String, _ note: String = "",
                sourceLocation: SourceLocation = #_sourceLocation) throws -> [String] {
    let compiled = LinePattern(pattern)
    var farthest = 0
    let bytes = Array(line.utf8)
    if let caps = compiled.match(bytes, &farthest) { return caps }
    let near = describe(Array(bytes[min(farthest, bytes.count)...]), limit: 80)
    throw HarnessError.mismatch("""
        line does not match\(note.isEmpty ? "" : " (\(note))") at \(sourceLocation.fileName):\(sourceLocation.line)
          expected: \(pattern)
          actual:   \(line)
          they part at byte \(farthest) of the line, where it has: \(near)
        """)
}

/// Throws unless `condition` holds (a check that stops the test, with a message).
func check(_ condition: Bool, _ message: @autoclosure () -> String,
           sourceLocation: SourceLocation = #_sourceLocation) throws {
    if !condition {
        throw HarnessError.mismatch("\(message()) (at \(sourceLocation.fileName):\(sourceLocation.line))")
    }
}

extension LineClient {
    /// Reads a line and checks it against `pattern`; returns the captures.
    @discardableResult
    func expect(_ pattern: String, _ note: String = "", timeout: Double = LineClient.defaultTimeout,
                sourceLocation: SourceLocation = #_sourceLocation) throws -> [String] {
        let line: String
        do {
            line = try readLine(timeout: timeout)
        } catch {
            throw HarnessError.mismatch("""
                awaiting a line matching \(pattern)\(note.isEmpty ? "" : " (\(note))") at \(sourceLocation.fileName):\(sourceLocation.line): \(error)
                """)
        }
        return try expectLine(line, pattern, note, sourceLocation: sourceLocation)
    }

    /// Reads a line and parses it as JSON.
    func readJSON(timeout: Double = LineClient.defaultTimeout) throws -> JSON {
        try JSON.parse(try readLine(timeout: timeout))
    }

    /// Sends `line` and checks the one reply against `pattern`.
    @discardableResult
    func roundTrip(_ line: String, _ pattern: String, timeout: Double = LineClient.defaultTimeout,
                   sourceLocation: SourceLocation = #_sourceLocation) throws -> [String] {
        try send(line)
        return try expect(pattern, "reply to \(line.prefix(80))", timeout: timeout, sourceLocation: sourceLocation)
    }

    /// The verb reply `{"status":"OK","context":"response","data":<data>,"messageCount":n}`.
    @discardableResult
    func expectOK(_ data: String, _ n: Int, sourceLocation: SourceLocation = #_sourceLocation) throws -> [String] {
        try expect(#"{"status":"OK","context":"response","data":"# + data + #","messageCount":\#(n)}"#,
                   sourceLocation: sourceLocation)
    }
}

/// Swift string literal for a JSON string value (quotes included).
func jsonString(_ s: String) -> String { JSON.quote(s) }
