import HeraldCore

/// The actions the `herald` binary serves. Each is an ordinary `Action`: replace or
/// extend this list to serve your own (see docs/actions.md).
public enum BuiltinActions {
    public static let all: [Action] = [randomNumber, cacheTest, sleepTest, status, showDocumentation]
}
