import Glibc

/// Classifies a request line (PROTOCOL.md §4 and §6). Pure: no state, no I/O.
public enum RequestParser {
    /// The depth limit for JSON request lines.
    public static let maxJSONDepth = 64

    /// `line` is one complete line without its terminator (as `LineFramer` reports).
    public static func parse(_ line: UnsafeRawBufferPointer) -> Request {
        parse(line, knownAction: nil)
    }

    /// `parse(_:)`, returning `knownAction` itself (no new string, no UTF-8 check) when
    /// the line is exactly that action's name: clients repeat the same request.
    public static func parse(_ line: UnsafeRawBufferPointer, knownAction: String?) -> Request {
        if let first = line.first, first == UInt8(ascii: "{") {
            return parseJSON(line)
        }
        if let knownAction, isSpelled(knownAction, by: line), verb(line) == nil {
            return .action(name: knownAction)
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

    private static func isSpelled(_ name: String, by line: UnsafeRawBufferPointer) -> Bool {
        guard name.utf8.count == line.count else { return false }
        var name = name
        return name.withUTF8 { utf8 in
            guard let a = utf8.baseAddress, let b = line.baseAddress else { return utf8.isEmpty }
            return memcmp(a, b, line.count) == 0
        }
    }

    /// The verb spelled by `word`, or nil. No allocation.
    public static func verb(_ word: UnsafeRawBufferPointer) -> Verb? {
        // Bucketed by length, compared against static strings: a plain action name is
        // ruled out in a comparison or two.
        func matches(_ spelling: StaticString) -> Bool {
            let letters = spelling.utf8Start
            for k in 0..<word.count where word[k] != letters[k] { return false }
            return true
        }
        switch word.count {
        case 3: return matches("say") ? .say : nil
        case 4: return matches("quit") ? .quit : matches("exit") ? .exit : matches("file") ? .file : nil
        case 5: return matches("close") ? .close : nil
        case 7: return matches("roomAdd") ? .roomAdd : nil
        case 8: return matches("paramAdd") ? .paramAdd : matches("roomView") ? .roomView : nil
        case 9: return matches("paramView") ? .paramView : matches("roomLeave") ? .roomLeave : nil
        case 10: return matches("paramsView") ? .paramsView : matches("roomChange") ? .roomChange : nil
        case 11:
            return matches("paramDelete") ? .paramDelete : matches("detailsView") ? .detailsView
                : matches("silenceRoom") ? .silenceRoom : nil
        case 12: return matches("paramsDelete") ? .paramsDelete : matches("listenToRoom") ? .listenToRoom : nil
        case 13: return matches("documentation") ? .documentation : nil
        default: return nil
        }
    }

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
