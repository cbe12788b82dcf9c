import Testing
@testable import HeraldClient

/// The client records what its requests changed with the server's own argument rules.
@Suite struct BookkeepingTests {
    @Test("roomAdd a b joins room a, as on the server")
    func roomAddFirstWord() {
        guard case .roomJoin(let room) = Bookkeeping(line: Array("roomAdd a b".utf8)) else {
            Issue.record("roomAdd not recognised")
            return
        }
        #expect(room == "a")
        guard case .roomChange(let changed) = Bookkeeping(line: Array("roomChange x y".utf8)),
              case .roomLeave(let left) = Bookkeeping(line: Array("roomLeave x y".utf8)),
              case .paramSet(let key, let value) = Bookkeeping(line: Array("paramAdd k=v w".utf8)) else {
            Issue.record("verbs not recognised")
            return
        }
        #expect(changed == "x" && left == "x" && key == "k" && value == "v w")
    }
}
