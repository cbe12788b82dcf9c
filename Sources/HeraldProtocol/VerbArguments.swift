/// How verbs split their arguments (PROTOCOL.md §4): one set of rules, used by the server
/// and by HeraldClient (which records the rooms and params its requests changed).
public enum VerbArguments {
    /// A room name or param key: the first word, up to the first space (`roomAdd a b` joins `a`).
    /// (No closure: on the request path a closure handed to `Optional.map` can cost a
    /// run-time isolation check per call.)
    public static func firstWord(_ arguments: String) -> String {
        if let space = arguments.firstIndex(of: " ") { return String(arguments[..<space]) }
        return arguments
    }

    /// `paramAdd key=value` (the value is the rest of the line, spaces and all) or
    /// `paramAdd key value` (the value is the second word); nil without a key.
    public static func paramAdd(_ arguments: String) -> (key: String, value: String)? {
        let words = arguments.split(separator: " ", omittingEmptySubsequences: false)
        guard let first = words.first else { return nil }
        if let equals = first.firstIndex(of: "=") {
            let key = String(first[..<equals])
            guard !key.isEmpty else { return nil }
            return (key, String(arguments[arguments.index(after: equals)...]))
        }
        guard !first.isEmpty else { return nil }
        return (String(first), words.count > 1 ? String(words[1]) : "")
    }

    /// `say [room] message`: the first word names the room when the connection is in a
    /// room of that name and a message follows; otherwise the whole line is the message
    /// (to the current room). Split on the first space by bytes (a Character search would
    /// run grapheme breaking over the whole message).
    public static func say(_ arguments: String, isMember: (String) -> Bool) -> (room: String?, message: String) {
        let utf8 = arguments.utf8
        if let space = utf8.firstIndex(of: UInt8(ascii: " ")) {
            let rest = utf8[utf8.index(after: space)...]
            if !rest.isEmpty {
                let word = String(Substring(utf8[..<space]))
                if isMember(word) { return (word, String(Substring(rest))) }
            }
        }
        return (nil, arguments)
    }
}
