// TEMPORARY: stands in for branch conn's input-hold API until it is merged. Delete then.
import HeraldLoop
extension Connection {
    struct InputHolds: OptionSet, Sendable {
        let rawValue: UInt8
        static let outputBacklog = InputHolds(rawValue: 1 << 0)
        static let busBacklog = InputHolds(rawValue: 1 << 1)
        static let roomOperations = InputHolds(rawValue: 1 << 2)
    }
    var inputHolds: InputHolds { [] }
}
extension Worker {
    func holdInput(_ connection: Connection, _ reason: Connection.InputHolds) {}
    func releaseInput(_ connection: Connection, _ reason: Connection.InputHolds) {}
}
