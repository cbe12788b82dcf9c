/// A strict RFC 8259 JSON reader.
///
/// - One value, with optional whitespace around it and nothing else.
/// - Iterative: nesting deeper than `maxDepth` (arrays and objects together) is an
///   error, never a stack overflow, whatever `maxDepth` is.
/// - Strings must be valid UTF-8 without raw control characters; `\u` escapes are
///   decoded, surrogate pairs combined, and a lone surrogate becomes U+FFFD.
/// - A repeated key keeps its first position and takes the last value (like
///   JavaScript's `JSON.parse`).
/// - Numbers become the nearest `Double` (out of range: ±infinity, like JavaScript).
public enum JSONParser {
    public static func parse(_ bytes: UnsafeRawBufferPointer, maxDepth: Int = 64) throws(JSONError) -> JSON {
        var parser = Parser(bytes: bytes, maxDepth: maxDepth)
        return try parser.parseDocument()
    }

    public static func parse(_ bytes: [UInt8], maxDepth: Int = 64) throws(JSONError) -> JSON {
        let result = bytes.withUnsafeBytes { raw in
            Result { () throws(JSONError) -> JSON in try parse(raw, maxDepth: maxDepth) }
        }
        return try result.get()
    }

    public static func parse(_ text: String, maxDepth: Int = 64) throws(JSONError) -> JSON {
        var text = text
        let result = text.withUTF8 { utf8 in
            Result { () throws(JSONError) -> JSON in
                try parse(UnsafeRawBufferPointer(utf8), maxDepth: maxDepth)
            }
        }
        return try result.get()
    }
}

/// Objects with this many keys or more get a hash index while being parsed, so a
/// hostile line with many keys costs linear, not quadratic, time.
private let indexedObjectThreshold = 16

private struct Parser {
    let bytes: UnsafeRawBufferPointer
    let maxDepth: Int
    var i = 0
    /// Reused for strings that contain escapes.
    var scratch: [UInt8] = []

    init(bytes: UnsafeRawBufferPointer, maxDepth: Int) {
        self.bytes = bytes
        self.maxDepth = maxDepth
    }

    // MARK: Document

    /// An enclosing container, parked while a nested one is being filled.
    enum Parent {
        case array([JSON])
        case object(JSONObject, key: String, index: [String: Int]?)
    }

    mutating func parseDocument() throws(JSONError) -> JSON {
        // The innermost open container lives in locals; only its enclosing
        // containers go on `parents`, so a flat object or array needs no stack.
        var depth = 0
        var inObject = false
        var array: [JSON] = []
        var object = JSONObject()
        var key = ""
        var keyIndex: [String: Int]? = nil
        var parents: [Parent] = []

        parseValue: while true {
            var value: JSON
            skipWhitespace()
            guard i < bytes.count else { throw error("unexpected end of input") }
            switch bytes[i] {
            case UInt8(ascii: "{"):
                try checkDepth(depth)
                i += 1
                skipWhitespace()
                if i < bytes.count && bytes[i] == UInt8(ascii: "}") {
                    i += 1
                    value = .object(JSONObject())
                } else {
                    let firstKey = try parseKeyAndColon()
                    if depth > 0 {
                        parents.append(inObject ? .object(object, key: key, index: keyIndex) : .array(array))
                        array = []
                        keyIndex = nil
                    }
                    depth += 1
                    inObject = true
                    object = JSONObject()
                    object.reserveCapacity(4)
                    key = firstKey
                    continue parseValue
                }
            case UInt8(ascii: "["):
                try checkDepth(depth)
                i += 1
                skipWhitespace()
                if i < bytes.count && bytes[i] == UInt8(ascii: "]") {
                    i += 1
                    value = .array([])
                } else {
                    if depth > 0 {
                        parents.append(inObject ? .object(object, key: key, index: keyIndex) : .array(array))
                        object = JSONObject()
                        keyIndex = nil
                    }
                    depth += 1
                    inObject = false
                    array = []
                    array.reserveCapacity(4)
                    continue parseValue
                }
            case UInt8(ascii: "\""):
                value = .string(try parseString())
            case UInt8(ascii: "t"):
                try expectLiteral("true")
                value = .bool(true)
            case UInt8(ascii: "f"):
                try expectLiteral("false")
                value = .bool(false)
            case UInt8(ascii: "n"):
                try expectLiteral("null")
                value = .null
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                value = .number(try parseNumber())
            default:
                throw unexpected()
            }

            // A value is complete: hand it to the open containers, closing those
            // that end here.
            while true {
                guard depth > 0 else {
                    skipWhitespace()
                    guard i == bytes.count else { throw error("unexpected data after the value") }
                    return value
                }
                if inObject {
                    Parser.insert(key, value, into: &object, index: &keyIndex)
                    skipWhitespace()
                    guard i < bytes.count else { throw error("unexpected end of input") }
                    if bytes[i] == UInt8(ascii: ",") {
                        i += 1
                        skipWhitespace()
                        key = try parseKeyAndColon()
                        continue parseValue
                    }
                    guard bytes[i] == UInt8(ascii: "}") else { throw error("expected ',' or '}'") }
                    i += 1
                    value = .object(object)
                    object = JSONObject()
                    keyIndex = nil
                } else {
                    array.append(value)
                    skipWhitespace()
                    guard i < bytes.count else { throw error("unexpected end of input") }
                    if bytes[i] == UInt8(ascii: ",") {
                        i += 1
                        continue parseValue
                    }
                    guard bytes[i] == UInt8(ascii: "]") else { throw error("expected ',' or ']'") }
                    i += 1
                    value = .array(array)
                    array = []
                }
                depth -= 1
                if depth > 0 {
                    switch parents.removeLast() {
                    case .array(let enclosing):
                        inObject = false
                        array = enclosing
                    case .object(let enclosing, key: let enclosingKey, index: let enclosingIndex):
                        inObject = true
                        object = enclosing
                        key = enclosingKey
                        keyIndex = enclosingIndex
                    }
                }
            }
        }
    }

    /// Sets `key` like `JSONObject`'s subscript. From `indexedObjectThreshold` keys
    /// on, a hash index finds duplicates, so a hostile line with many keys costs
    /// linear, not quadratic, time.
    static func insert(_ key: String, _ value: JSON, into object: inout JSONObject, index: inout [String: Int]?) {
        if index == nil {
            if let at = object.index(forKey: key) {
                object.entries[at].value = value
                return
            }
            object.append(key, value)
            if object.count == indexedObjectThreshold {
                var built: [String: Int] = [:]
                built.reserveCapacity(indexedObjectThreshold * 2)
                for k in object.entries.indices { built[object.entries[k].key] = k }
                index = built
            }
            return
        }
        if let at = index![key] {
            object.entries[at].value = value
        } else {
            index![key] = object.count
            object.append(key, value)
        }
    }

    func checkDepth(_ open: Int) throws(JSONError) {
        if open >= maxDepth {
            var text = "nesting deeper than "
            text += String(maxDepth)
            throw error(text)
        }
    }

    // MARK: Tokens

    @inline(__always)
    mutating func skipWhitespace() {
        while i < bytes.count {
            let c = bytes[i]
            guard c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 else { return }
            i += 1
        }
    }

    mutating func parseKeyAndColon() throws(JSONError) -> String {
        guard i < bytes.count else { throw error("unexpected end of input") }
        guard bytes[i] == UInt8(ascii: "\"") else { throw error("expected a string key") }
        let key = try parseString()
        skipWhitespace()
        guard i < bytes.count else { throw error("unexpected end of input") }
        guard bytes[i] == UInt8(ascii: ":") else { throw error("expected ':'") }
        i += 1
        return key
    }

    mutating func expectLiteral(_ word: StaticString) throws(JSONError) {
        let n = word.utf8CodeUnitCount
        let p = word.utf8Start
        for k in 0..<n {
            guard i + k < bytes.count else {
                i += k
                throw error("unexpected end of input")
            }
            guard bytes[i + k] == p[k] else {
                i += k
                throw unexpected()
            }
        }
        i += n
    }

    mutating func parseNumber() throws(JSONError) -> Double {
        let start = i
        if bytes[i] == UInt8(ascii: "-") { i += 1 }
        guard i < bytes.count else { throw error("unexpected end of input") }
        if bytes[i] == UInt8(ascii: "0") {
            i += 1
        } else if isDigit(bytes[i]) {
            while i < bytes.count && isDigit(bytes[i]) { i += 1 }
        } else {
            throw error("invalid number")
        }
        if i < bytes.count && bytes[i] == UInt8(ascii: ".") {
            i += 1
            guard i < bytes.count, isDigit(bytes[i]) else { throw error("invalid number") }
            while i < bytes.count && isDigit(bytes[i]) { i += 1 }
        }
        if i < bytes.count && (bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E")) {
            i += 1
            if i < bytes.count && (bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-")) { i += 1 }
            guard i < bytes.count, isDigit(bytes[i]) else { throw error("invalid number") }
            while i < bytes.count && isDigit(bytes[i]) { i += 1 }
        }
        return JSONNumberFormat.value(ofValidatedLiteral: UnsafeRawBufferPointer(rebasing: bytes[start..<i]))
    }

    @inline(__always)
    func isDigit(_ c: UInt8) -> Bool { c &- 48 < 10 }

    /// At the opening quote; leaves `i` after the closing quote.
    mutating func parseString() throws(JSONError) -> String {
        let open = i
        i += 1
        let start = i
        var highBits: UInt8 = 0
        while i < bytes.count {
            let c = bytes[i]
            if c == UInt8(ascii: "\"") {
                let raw = UnsafeRawBufferPointer(rebasing: bytes[start..<i])
                i += 1
                if highBits < 0x80 {
                    // ASCII only: nothing to validate.
                    return raw.withMemoryRebound(to: UInt8.self) { String(decoding: $0, as: UTF8.self) }
                }
                return try makeString(raw, at: start, inInput: true)
            }
            highBits |= c
            if c == UInt8(ascii: "\\") { break }
            if c < 0x20 { throw error("control character in string") }
            i += 1
        }
        guard i < bytes.count else {
            i = open
            throw error("unterminated string")
        }
        // Escapes present: decode into the scratch buffer.
        scratch.removeAll(keepingCapacity: true)
        scratch.appendRaw(UnsafeRawBufferPointer(rebasing: bytes[start..<i]))
        while i < bytes.count {
            let c = bytes[i]
            if c == UInt8(ascii: "\"") {
                i += 1
                let decoded = scratch.withUnsafeBytes { buffer in
                    Result { () throws(JSONError) -> String in try makeString(buffer, at: start, inInput: false) }
                }
                return try decoded.get()
            }
            if c < 0x20 { throw error("control character in string") }
            if c != UInt8(ascii: "\\") {
                scratch.append(c)
                i += 1
                continue
            }
            i += 1
            guard i < bytes.count else { break }
            switch bytes[i] {
            case UInt8(ascii: "\""): scratch.append(UInt8(ascii: "\""))
            case UInt8(ascii: "\\"): scratch.append(UInt8(ascii: "\\"))
            case UInt8(ascii: "/"): scratch.append(UInt8(ascii: "/"))
            case UInt8(ascii: "b"): scratch.append(0x08)
            case UInt8(ascii: "f"): scratch.append(0x0C)
            case UInt8(ascii: "n"): scratch.append(0x0A)
            case UInt8(ascii: "r"): scratch.append(0x0D)
            case UInt8(ascii: "t"): scratch.append(0x09)
            case UInt8(ascii: "u"):
                i += 1
                let unit = try parseHex4()
                var scalar: UInt32 = 0xFFFD
                if unit >= 0xD800 && unit < 0xDC00 {
                    // A high surrogate: a pair only when "\uDC00"..."\uDFFF" follows.
                    if i + 1 < bytes.count && bytes[i] == UInt8(ascii: "\\") && bytes[i + 1] == UInt8(ascii: "u") {
                        let save = i
                        i += 2
                        let low = try parseHex4()
                        if low >= 0xDC00 && low < 0xE000 {
                            scalar = 0x10000 + ((UInt32(unit) - 0xD800) << 10) + (UInt32(low) - 0xDC00)
                        } else {
                            i = save
                        }
                    }
                } else if unit < 0xDC00 || unit >= 0xE000 {
                    scalar = UInt32(unit)
                }
                appendScalar(scalar)
                continue
            default:
                throw error("invalid escape")
            }
            i += 1
        }
        i = open
        throw error("unterminated string")
    }

    /// Four hex digits at `i`; leaves `i` after them.
    mutating func parseHex4() throws(JSONError) -> UInt16 {
        var v: UInt16 = 0
        for _ in 0..<4 {
            guard i < bytes.count else { throw error("unexpected end of input") }
            let c = bytes[i]
            let d: UInt8
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): d = c - 48
            case UInt8(ascii: "a")...UInt8(ascii: "f"): d = c - 87
            case UInt8(ascii: "A")...UInt8(ascii: "F"): d = c - 55
            default: throw error("invalid \\u escape")
            }
            v = v << 4 | UInt16(d)
            i += 1
        }
        return v
    }

    mutating func appendScalar(_ s: UInt32) {
        if s < 0x80 {
            scratch.append(UInt8(s))
        } else if s < 0x800 {
            scratch.append(UInt8(0xC0 | (s >> 6)))
            scratch.append(UInt8(0x80 | (s & 0x3F)))
        } else if s < 0x10000 {
            scratch.append(UInt8(0xE0 | (s >> 12)))
            scratch.append(UInt8(0x80 | ((s >> 6) & 0x3F)))
            scratch.append(UInt8(0x80 | (s & 0x3F)))
        } else {
            scratch.append(UInt8(0xF0 | (s >> 18)))
            scratch.append(UInt8(0x80 | ((s >> 12) & 0x3F)))
            scratch.append(UInt8(0x80 | ((s >> 6) & 0x3F)))
            scratch.append(UInt8(0x80 | (s & 0x3F)))
        }
    }

    /// Validates and converts. A failure names the bad byte when `raw` is a slice
    /// of the input starting at `start`, else `start` (the string's first byte).
    /// (Not `String(validating:as:)`: it is generic and looks up type metadata at
    /// run time, several times slower for the short strings of a request.)
    func makeString(_ raw: UnsafeRawBufferPointer, at start: Int, inInput: Bool) throws(JSONError) -> String {
        if let bad = UTF8Validation.firstInvalidOffset(raw) {
            throw JSONError(message: "invalid UTF-8", offset: inInput ? start + bad : start)
        }
        return raw.withMemoryRebound(to: UInt8.self) { String(decoding: $0, as: UTF8.self) }
    }

    // MARK: Errors

    func error(_ message: String) -> JSONError {
        JSONError(message: message, offset: i)
    }

    func unexpected() -> JSONError {
        let c = bytes[i]
        var text = "unexpected character "
        if c >= 0x20 && c < 0x7F {
            text += "'"
            text.unicodeScalars.append(Unicode.Scalar(c))
            text += "'"
        } else {
            text += "0x"
            text.unicodeScalars.append(Unicode.Scalar(c >> 4 < 10 ? (c >> 4) + 48 : (c >> 4) + 87))
            text.unicodeScalars.append(Unicode.Scalar(c & 15 < 10 ? (c & 15) + 48 : (c & 15) + 87))
        }
        return JSONError(message: text, offset: i)
    }
}
