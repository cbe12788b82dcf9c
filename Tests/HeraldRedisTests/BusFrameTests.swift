import HeraldLoop
import Testing
@testable import HeraldRedis

@Suite struct BusFrameTests {
    private func frame(_ origin: String, _ line: String, sequence: UInt64 = 7) -> [UInt8] {
        var message: [UInt8] = []
        Array(line.utf8).withUnsafeBytes { BusFrame.encode(header: BusFrame.header(origin: Array(origin.utf8)), sequence: sequence, line: $0, into: &message) }
        return message
    }

    private func parse(_ message: [UInt8]) -> (String, String)? {
        message.withUnsafeBytes { bytes in
            BusFrame.parse(bytes).map { (String(decoding: $0.origin, as: UTF8.self), String(decoding: $0.line, as: UTF8.self)) }
        }
    }

    @Test("ids of any length round-trip: web1 and web10, pids of different digit counts")
    func roundTrip() {
        let line = #"{"message":"hi","room":"x","from":"abc","context":"user","sentAt":1}"#
        for origin in ["web1-42-1a2b3c4d", "web10-42-1a2b3c4d", "web1-4049-2f3e2fda", "h", String(repeating: "x", count: 255)] {
            let message = frame(origin, line)
            #expect(message[0] == BusFrame.version)
            #expect(Int(message[1]) == origin.utf8.count)
            let parsed = parse(message)
            #expect(parsed?.0 == origin)
            #expect(parsed?.1 == line)
        }
    }

    @Test("the sequence (the message's identity with the origin) round-trips")
    func sequence() {
        for sequence: UInt64 in [0, 1, 255, 256, 1 << 40, .max] {
            let message = frame("w1", "{}", sequence: sequence)
            #expect(message.withUnsafeBytes { BusFrame.parse($0)?.sequence } == sequence)
        }
    }

    @Test("the own echo is recognised by exact comparison only")
    func echo() {
        let message = frame("web1-42-aa", "{}")
        let check = { (id: String) in Array(id.utf8).withUnsafeBytes { id in message.withUnsafeBytes { BusFrame.isFrom(id, $0) } } }
        #expect(check("web1-42-aa"))
        #expect(!check("web10-42-aa"))
        #expect(!check("web1-42-a"))
        #expect(!check("web1-42-aab"))
        #expect(!check("web1-42-ab"))
    }

    @Test("malformed messages are refused, never misread")
    func malformed() {
        #expect(parse([]) == nil)
        #expect(parse([1]) == nil)
        #expect(parse([2, 3, 65, 66, 67, 0, 0, 0, 0, 0, 0, 0, 0]) == nil)  // an origin and no line
        #expect(parse([2, 0, 65]) == nil)  // an empty origin
        #expect(parse([2, 9, 65, 66]) == nil)  // length past the end
        #expect(parse([2, 1, 65, 1, 0, 0, 0, 0, 0, 0]) == nil)  // a short sequence
        #expect(parse([1, 1, 65, 66]) == nil)  // version 1 (no sequence)
        #expect(parse(Array("web1-1-aa{}".utf8)) == nil)  // the old, unframed format
        #expect(parse([2, 1, 65, 1, 0, 0, 0, 0, 0, 0, 0, 66]).map { $0.0 + "|" + $0.1 } == "A|B")
    }

    @Test("encoding reuses the buffer")
    func reuse() {
        var message: [UInt8] = []
        let header = BusFrame.header(origin: Array("w".utf8))
        Array("first line".utf8).withUnsafeBytes { BusFrame.encode(header: header, sequence: 1, line: $0, into: &message) }
        Array("2nd".utf8).withUnsafeBytes { BusFrame.encode(header: header, sequence: 2, line: $0, into: &message) }
        #expect(message == [2, 1, UInt8(ascii: "w"), 2, 0, 0, 0, 0, 0, 0, 0] + Array("2nd".utf8))
    }
}

@Suite struct SubscriberBacklogTests {
    @Test("the largest omem of a CLIENT LIST reply")
    func largestOutputBuffer() {
        let list = """
            id=3 addr=127.0.0.1:50000 laddr=127.0.0.1:6379 fd=8 name= age=0 idle=0 flags=P db=0 sub=1 psub=0 obl=0 oll=0 omem=0 tot-mem=20512 cmd=subscribe
            id=4 addr=127.0.0.1:50001 laddr=127.0.0.1:6379 fd=9 name= age=3 idle=0 flags=P db=0 sub=9 psub=0 obl=0 oll=12 omem=5242880 tot-mem=5263392 cmd=subscribe
            id=5 addr=127.0.0.1:50002 laddr=127.0.0.1:6379 fd=10 name=xomem=99999999 omem=17 cmd=subscribe

            """
        #expect(SubscriberBacklogTests.largest(list) == 5_242_880)
        #expect(SubscriberBacklogTests.largest("") == 0)
        #expect(SubscriberBacklogTests.largest("omem=12") == 12)
    }

    static func largest(_ text: String) -> Int { RedisBus.largestOutputBuffer(clientList: Array(text.utf8)) }
}
