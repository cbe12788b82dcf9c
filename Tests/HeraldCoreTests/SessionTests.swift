import HeraldProtocol
import Testing
@testable import HeraldCore

/// The session a connection handoff carries (Session.swift): one value, binary, versioned.
@Suite struct SessionTests {
    static let full: Session = {
        var session = Session(idHigh: 0x0123_4567_89ab_4cde, idLow: 0x8fed_cba9_8765_4321, remoteIP: "::1", remotePort: 54_321,
                              connectedAt: 1_796_000_000_123,
                              params: JSONObject([("user", .string("ü ser")), ("n", .number(3.5)), ("list", .array([.null, .bool(true)]))]),
                              paramBytes: 61,
                              rooms: [Session.Room(name: "defaultRoom", joinedAt: 1_796_000_000_124), Session.Room(name: "a b", joinedAt: -1)],
                              messageCount: 123_456, totalActions: 789, unparsed: Array("randomNumber\r\nsay hi".utf8),
                              discardingLine: true, output: [0, 255, 10, 13])
        session.chatOrigin = Array("host-42-1a2b3c4d".utf8)
        session.chatSequence = .max
        session.cursors = [Session.Cursor(room: "defaultRoom", origin: Array("other-1-ff".utf8), sequence: 77)]
        return session
    }()

    @Test("every field round-trips")
    func roundTrip() throws {
        let decoded = try Session(decoding: Self.full.encoded)
        #expect(decoded == Self.full)
        #expect(decoded.id.string == ConnectionID(high: Self.full.idHigh, low: Self.full.idLow).string)
        let empty = Session(idHigh: 0, idLow: 0, remoteIP: "", remotePort: 0, connectedAt: 0)
        #expect(try Session(decoding: empty.encoded) == empty)
    }

    @Test("another version, a truncation or trailing bytes are refused, never misread")
    func refused() {
        var other = Self.full.encoded
        other[0] = Session.encodingVersion + 1
        #expect(throws: Session.DecodingError.self) { try Session(decoding: other) }
        let bytes = Self.full.encoded
        for length in [0, 1, 9, 17, bytes.count / 2, bytes.count - 1] {
            #expect(throws: Session.DecodingError.self) { try Session(decoding: Array(bytes.prefix(length))) }
        }
        #expect(throws: Session.DecodingError.self) { try Session(decoding: bytes + [0]) }
    }
}
