import HeraldCore

extension BuiltinActions {
    /// `{"documentation":…}`, as the `documentation` verb shows it.
    public static let showDocumentation = Action(
        name: "showDocumentation",
        description: "return API documentation"
    ) { call in
        call.response.append("documentation", call.worker.documentation)
    }
}
