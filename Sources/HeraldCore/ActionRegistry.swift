import HeraldProtocol

/// The actions a worker serves, by name. Registering a name again replaces it (and a
/// new version becomes the one clients get).
public struct ActionRegistry: Sendable {
    private var byName: [String: Action] = [:]
    private var order: [String] = []

    public init(_ actions: [Action] = []) {
        for action in actions { register(action) }
    }

    public mutating func register(_ action: Action) {
        if byName[action.name] == nil { order.append(action.name) }
        byName[action.name] = action
    }

    public mutating func remove(_ name: String) {
        byName[name] = nil
        order.removeAll { $0 == name }
    }

    public subscript(name: String) -> Action? { byName[name] }

    public var names: [String] { order }

    /// `{"<action>":{"<version>":{"name","version","description","inputs","outputExample"}}}`
    public var documentation: JSON {
        var result = JSONObject()
        for name in order {
            guard let action = byName[name] else { continue }
            let required = action.inputs.filter(\.isRequired).map { JSON.string($0.name) }
            let optional = action.inputs.filter { !$0.isRequired }.map { JSON.string($0.name) }
            let entry = JSONObject([
                ("name", .string(action.name)),
                ("version", .number(Double(action.version))),
                ("description", .string(action.description)),
                ("inputs", .object(JSONObject([("required", .array(required)), ("optional", .array(optional))]))),
                ("outputExample", .object(action.outputExample)),
            ])
            result.append(name, .object(JSONObject([(String(action.version), .object(entry))])))
        }
        return .object(result)
    }
}
