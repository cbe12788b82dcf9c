/// Classifies a request line (PROTOCOL.md §4 and §6). Pure: no state, no I/O.
public enum RequestParser {
    /// The depth limit for JSON request lines.
    public static let maxJSONDepth = 64

    /// `line` is one complete line without its terminator (as `LineFramer` reports).
    public static func parse(_ line: UnsafeRawBufferPointer) -> Request {
        if let first = line.first, first == UInt8(ascii: "{") {
            return parseJSON(line)
        }
        guard UTF8Validation.isValid(line) else { return .bad(Request.invalidUTF8Text) }
        var space = 0
        while space < line.count && line[space] != UInt8(ascii: " ") { space += 1 }
        let word = UnsafeRawBufferPointer(rebasing: line[0..<space])
        if let verb = verb(word) {
            let arguments = space < line.count
                ? String(decoding: UnsafeRawBufferPointer(rebasing: line[(space + 1)...]), as: UTF8.self)
                : ""
            return .verb(verb, arguments: arguments)
        }
        return .action(name: String(decoding: word, as: UTF8.self))
    }

    /// The verb spelled by `word`, or nil. No allocation.
    public static func verb(_ word: UnsafeRawBufferPointer) -> Verb? {
        // Verbs are 3 to 13 bytes; compare only those with the right length.
        guard word.count >= 3, word.count <= 13 else { return nil }
        for (verb, spelling) in verbSpellings where spelling.count == word.count {
            var same = true
            for k in 0..<word.count where word[k] != spelling[k] {
                same = false
                break
            }
            if same { return verb }
        }
        return nil
    }

    private static let verbSpellings: [(Verb, [UInt8])] = Verb.allCases.map { ($0, Array($0.rawValue.utf8)) }

    private static func parseJSON(_ line: UnsafeRawBufferPointer) -> Request {
        let value: JSON
        do {
            value = try JSONParser.parse(line, maxDepth: maxJSONDepth)
        } catch {
            // Invalid UTF-8 outside a string is also a JSON syntax error: name the
            // encoding problem first, as for plain lines.
            if !UTF8Validation.isValid(line) { return .bad(Request.invalidUTF8Text) }
            return .bad(Request.invalidJSONText(error))
        }
        // The first byte is "{", so a successful parse is an object.
        guard case .object(let object) = value else { return .bad(Request.missingActionText) }
        guard case .string(let name)? = object["action"] else { return .bad(Request.missingActionText) }
        switch object["params"] {
        case nil:
            return .jsonAction(name: name, params: nil)
        case .object(let params)?:
            return .jsonAction(name: name, params: params)
        default:
            return .bad(Request.paramsNotObjectText)
        }
    }
}
