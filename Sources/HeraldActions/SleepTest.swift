import HeraldCore
import HeraldLoop

extension BuiltinActions {
    /// Replies after `sleepDuration` milliseconds without holding up anything else.
    public static let sleepTest = Action(
        name: "sleepTest",
        description: "I will sleep and then return",
        inputs: [.optional("sleepDuration", default: 1000)],
        outputExample: ["sleepStarted": 1420000000000, "sleepEnded": 1420000001000, "sleepDelta": 1000, "sleepDuration": 1000]
    ) { call in
        guard let requested = call.number("sleepDuration"), requested.isFinite else {
            throw ActionError("sleepDuration must be a number of milliseconds")
        }
        let duration = Int(min(max(requested, 0), 86_400_000).rounded())
        let started = Clock.wallMillis()
        await call.sleep(milliseconds: duration)
        try call.checkCancellation()  // the client left early: nobody reads the reply
        let ended = Clock.wallMillis()
        call.response.append("sleepStarted", .number(Double(started)))
        call.response.append("sleepEnded", .number(Double(ended)))
        call.response.append("sleepDelta", .number(Double(ended - started)))
        call.response.append("sleepDuration", .number(Double(duration)))
    }
}
