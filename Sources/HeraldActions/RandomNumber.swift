import HeraldCore

extension BuiltinActions {
    /// `{"randomNumber":<double in [0,1)>}`
    public static let randomNumber = Action(
        name: "randomNumber",
        description: "I am an API method which will generate a random number",
        outputExample: ["randomNumber": 0.123]
    ) { call in
        call.appendResponse("randomNumber", .number(call.worker.randomUnitInterval()))
    }
}
