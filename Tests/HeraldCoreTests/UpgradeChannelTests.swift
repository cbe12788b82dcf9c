import Glibc
import HeraldCluster
import HeraldProtocol
import Testing

/// The upgrade channel's first exchange (UpgradeChannel): a version either side does not
/// speak is refused clearly, and the old supervisor keeps serving.
@Suite struct UpgradeChannelTests {
    /// A SOCK_SEQPACKET pair and the new supervisor's inheritance of one end.
    private func inheritance() throws -> (UpgradeInheritance, old: Int32) {
        var fds: [Int32] = [0, 0]
        #expect(socketpair(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0)
        let listener = open("/dev/null", O_RDONLY)
        let inherited = try #require(try UpgradeInheritance.takeFromEnvironment([
            UpgradeChannel.fdVariable: String(fds[1]), UpgradeChannel.listenVariable: String(listener),
            UpgradeChannel.predecessorVariable: String(getpid()),
        ]))
        return (inherited, fds[0])
    }

    @Test func aWelcomeOfAnotherVersionIsRefusedByTheNewSupervisor() throws {
        let (inherited, old) = try inheritance()
        defer { close(old); close(inherited.channel); for fd in inherited.slots.joined() { close(fd) } }
        try UpgradeChannel.send([("type", .string("welcome")), ("version", .number(99))], on: old)
        do {
            try inherited.handshake(timeoutMilliseconds: 2_000)
            Issue.record("a welcome of version 99 was accepted")
        } catch {
            #expect(error.description.contains("version mismatch"), "\(error)")
            #expect(error.description.contains("99"))
        }
        let hello = try #require(try UpgradeChannel.receive(on: old)).message
        #expect(hello["type"]?.stringValue == "hello")
        #expect(hello["version"]?.numberValue == Double(UpgradeChannel.version))
        let refused = try #require(try UpgradeChannel.receive(on: old)).message
        #expect(refused["type"]?.stringValue == "refused")
        #expect(refused["reason"]?.stringValue?.contains("version mismatch") == true)
    }

    @Test func theOldSupervisorsRefusalIsTheNewOnesFailure() throws {
        let (inherited, old) = try inheritance()
        defer { close(old); close(inherited.channel); for fd in inherited.slots.joined() { close(fd) } }
        try UpgradeChannel.send([("type", .string("refused")), ("reason", .string("upgrade channel version mismatch: …"))], on: old)
        #expect(throws: UpgradeChannel.Failure.self) { try inherited.handshake(timeoutMilliseconds: 2_000) }
    }

    @Test func versionsAreCompared() throws {
        #expect(UpgradeChannel.versionProblem(JSONObject([("version", .number(Double(UpgradeChannel.version)))]), peer: "x") == nil)
        let problem = UpgradeChannel.versionProblem(JSONObject([("version", .number(2))]), peer: "new supervisor")
        #expect(problem?.contains("the new supervisor speaks version 2") == true)
        #expect(UpgradeChannel.versionProblem(JSONObject([]), peer: "new supervisor")?.contains("none") == true)
    }
}
