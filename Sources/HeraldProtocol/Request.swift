/// The verbs of PROTOCOL.md §4, spelled as on the wire (case-sensitive).
public enum Verb: String, Sendable, CaseIterable {
    case quit, exit, close, paramAdd, paramView, paramDelete, paramsView, paramsDelete,
         roomAdd, roomLeave, roomChange, roomView, detailsView, say, documentation, file,
         listenToRoom, silenceRoom
}

/// One request line, classified.
public enum Request: Sendable, Equatable {
    /// A verb line. `arguments` is everything after "<verb> " (the verb and one
    /// space), untouched; "" when the line is just the verb.
    case verb(Verb, arguments: String)
    /// A plain line whose first word (up to the first space) is not a verb. A line
    /// starting with a space has the name "".
    case action(name: String)
    /// A line starting with "{": the JSON request's action name, and its params
    /// (nil when the "params" key is absent).
    case jsonAction(name: String, params: JSONObject?)
    /// A bad request: the complete error text for the reply.
    case bad(String)
}

extension Request {
    public static let invalidUTF8Text = "Error: the request is not valid UTF-8"
    public static let missingActionText = "Error: a JSON request needs an action name"
    public static let paramsNotObjectText = "Error: params must be a JSON object"

    /// "Error: the request is not valid JSON (<reason>)".
    public static func invalidJSONText(_ error: JSONError) -> String {
        var text = "Error: the request is not valid JSON ("
        text += error.message
        text += ")"
        return text
    }
}
