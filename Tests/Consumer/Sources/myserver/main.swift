import HeraldActions
import HeraldCore
import HeraldProtocol
import HeraldServer

// docs/actions.md's example: a server binary of one's own with an action of one's own.
let greet = Action(
    name: "greet",
    description: "Greets someone by name",
    inputs: [.required("name"), .optional("greeting", default: "Hello")]
) { call in
    let greeting = call.string("greeting") ?? "Hello"
    guard let name = call.string("name"), name.count <= 100 else {
        throw ActionError("name must be at most 100 characters")
    }
    call.response["message"] = .string("\(greeting), \(name)")
}

Herald.main(actions: BuiltinActions.all + [greet])
