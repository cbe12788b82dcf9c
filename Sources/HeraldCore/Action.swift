import HeraldLoop
import HeraldProtocol

/// An input an action declares: required, or optional with an optional default.
public struct ActionInput: Sendable, Equatable {
    public let name: String
    public let isRequired: Bool
    public let defaultValue: JSON?

    public static func required(_ name: String) -> ActionInput {
        ActionInput(name: name, isRequired: true, defaultValue: nil)
    }

    public static func optional(_ name: String, default defaultValue: JSON? = nil) -> ActionInput {
        ActionInput(name: name, isRequired: false, defaultValue: defaultValue)
    }
}

/// A named piece of work clients call by name. Built-in actions and your own use the
/// same type; register them with `ActionRegistry`.
///
///     let hello = Action(name: "hello", description: "Greets someone",
///                        inputs: [.required("name")],
///                        outputExample: ["greeting": "Hello, Ada"]) { call in
///         call.response["greeting"] = .string("Hello, \(call.string("name") ?? "")")
///     }
///
/// `run` executes on the worker's event loop (`@LoopActor`): it must not block, but it
/// may `await` (a timer through `call.sleep`, the cache, other workers). A body without
/// `await` is a synchronous action and runs inline, without starting a task: the
/// cheapest kind of request.
public final class Action: Sendable {
    public typealias SyncBody = @LoopActor @Sendable (ActionCall) throws -> Void
    public typealias AsyncBody = @LoopActor @Sendable (ActionCall) async throws -> Void

    public enum Body: Sendable {
        case sync(SyncBody)
        case async(AsyncBody)
    }

    public let name: String
    public let description: String
    public let version: Int
    public let inputs: [ActionInput]
    public let outputExample: JSONObject
    public let body: Body

    /// A synchronous action: `run` returns with the response complete.
    public convenience init(name: String, description: String, version: Int = 1, inputs: [ActionInput] = [],
                            outputExample: JSONObject = JSONObject(), run: @escaping SyncBody) {
        self.init(name: name, description: description, version: version, inputs: inputs,
                  outputExample: outputExample, body: .sync(run))
    }

    /// An action that waits: `run` runs in a task on the worker's loop.
    public convenience init(name: String, description: String, version: Int = 1, inputs: [ActionInput] = [],
                            outputExample: JSONObject = JSONObject(), run: @escaping AsyncBody) {
        self.init(name: name, description: description, version: version, inputs: inputs,
                  outputExample: outputExample, body: .async(run))
    }

    public init(name: String, description: String, version: Int, inputs: [ActionInput],
                outputExample: JSONObject, body: Body) {
        self.name = name
        self.description = description
        self.version = version
        self.inputs = inputs
        self.outputExample = outputExample
        self.body = body
    }
}

/// An error an action throws to fail with a message the client sees as
/// `"error":"Error: <message>"`. Any other error thrown is reported to the client as an
/// internal error and logged.
public struct ActionError: Error, Sendable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { "Error: \(message)" }
}
