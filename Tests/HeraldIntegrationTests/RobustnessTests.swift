import Foundation
import Glibc
import Testing
@testable import HeraldTestSupport

/// Hostile and careless clients: the server must stay up and keep serving others.
/// Serialized: these tests load the machine and should not skew each other.
@Suite("Robustness", .serialized)
struct RobustnessTests {
    /// A small deterministic generator, so a failure can be replayed.
    struct SplitMix64 {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    @Test("binary garbage: every reply is one JSON line, and the server goes on")
    func binaryGarbage() throws {
        try withHerald { h in
            let (c, _) = try h.connectWelcomed()
            var rng = SplitMix64(state: 0x5eed)
            var sentLines = 0
            for _ in 0..<16 {
                var chunk = [UInt8]()
                for _ in 0..<4096 {
                    var b = UInt8(truncatingIfNeeded: rng.next())
                    // No telnet break sequences (0xff…, lone 0x04): those close on purpose.
                    if b == 0xff || b == 0x04 { b = 0x20 }
                    chunk.append(b)
                }
                sentLines += chunk.filter { $0 == 10 || $0 == 13 }.count
                try c.sendRaw(chunk)
            }
            try c.sendRaw("\r\ndetailsView\r\n")
            var replies = 0
            while true {
                let line = try c.readLine(timeout: 10)
                do {
                    _ = try JSON.parse(line)
                } catch {
                    throw HarnessError.mismatch("a reply to garbage is not one JSON value: \(error)")
                }
                replies += 1
                if line.hasPrefix(#"{"status":"OK","context":"response","data":{"id":"#) { break }
                try check(replies <= sentLines + 2, "more replies than lines sent")
            }
            try h.requireServing("after binary garbage")
        }
    }

    @Test("a 5 MB line without a newline, then a valid line")
    func hugeLine() throws {
        try withHerald { h in
            let (c, _) = try h.connectWelcomed()
            let megabyte = [UInt8](repeating: UInt8(ascii: "x"), count: 1 << 20)
            for _ in 0..<5 { try c.sendRaw(megabyte, timeout: 20) }
            try c.sendRaw("\r\nrandomNumber\r\n")
            try c.expect(#"{"status":"error","error":"data length is too big (1048576 max)","context":"response","messageCount":1}"#, timeout: 10)
            try c.expect(#"{"randomNumber":<NUM>,"context":"response","messageCount":2}"#)
            try h.requireServing("after a 5 MB line")
        }
    }

    @Test("half a line, a pending action, then a hang-up or reset: the server goes on")
    func halfLineThenDisconnect() throws {
        try withHerald { h in
            for reset in [false, true] {
                let (c, _) = try h.connectWelcomed()
                try c.sendRaw(#"{"action":"sleepTest","params":{"sleepDuration":200}}"# + "\nrandomNu")
                if reset { c.resetClose() } else { c.close() }
            }
            let (d, _) = try h.connectWelcomed()
            try d.sendRaw("paramAdd a=")
            d.shutdownWrite()
            usleep(400_000)  // the sleeps end with nobody to answer
            d.close()
            try h.requireServing("after half lines and hang-ups")
        }
    }

    @Test("2,000 connections opened and closed quickly, then a working request")
    func connectionChurn() throws {
        try withHerald { h in
            for i in 0..<2000 {
                let c = try LineClient(port: h.port)
                switch i % 4 {
                case 0: c.resetClose()
                case 1: _ = try? c.readLine(timeout: 2); c.close()
                case 2: try? c.send("randomNumber"); c.close()
                default: c.close()
                }
            }
            try h.requireServing("after 2,000 short connections")
            let (c, _) = try h.connectWelcomed()
            try RoomsChatTests.waitForMembers(c, room: "defaultRoom", expected: 1, within: 3)
        }
    }

    @Test("200 connections open at once all get served")
    func manyOpenConnections() throws {
        try withHerald { h in
            var clients: [LineClient] = []
            for _ in 0..<200 { clients.append(try h.connect()) }
            for c in clients { try c.expect(#"{"welcome":"Hello! Welcome to the actionhero api","room":"defaultRoom","context":"api"}"#) }
            for c in clients { try c.send("randomNumber") }
            for c in clients { try c.expect(#"{"randomNumber":<NUM>,"context":"response","messageCount":1}"#) }
            try clients[0].send("roomView")
            try check(try clients[0].readJSON()["data"]?["membersCount"]?.intValue == 200, "all 200 connections are in defaultRoom")
        }
    }

    @Test("a client that sends 20 MB of requests and never reads is disconnected; others keep working")
    func nonReadingFlood() throws {
        try withHerald { h in
            let (flooder, _) = try h.connectWelcomed()
            let (other, _) = try h.connectWelcomed()
            let line = Array("randomNumber\r\n".utf8)
            var chunk = [UInt8]()
            while chunk.count < 64 * 1024 { chunk += line }
            let total = 20 * 1024 * 1024
            var sent = 0
            var otherCount = 0
            var disconnected = false
            let deadline = Deadline(40)
            var sinceCheck = 0
            while sent < total && !deadline.passed {
                let outcome = flooder.trySend(chunk[...], timeout: 0.25)
                sent += outcome.sent
                sinceCheck += outcome.sent
                if case .failed = outcome.stop { disconnected = true; break }
                if sinceCheck >= 1 << 20 || outcome.stop == .timedOut {
                    sinceCheck = 0
                    otherCount += 1
                    try other.roundTrip("randomNumber", #"{"randomNumber":<NUM>,"context":"response","messageCount":\#(otherCount)}"#)
                }
            }
            if !disconnected {
                // Everything went out (or the server stopped reading): the server must now
                // drop the connection rather than buffer every reply.
                let drained = flooder.drain(timeout: 15, maxBytes: 200 * 1024 * 1024)
                try check(drained.end == .closed,
                          "the non-reading client was not disconnected (sent \(sent) bytes, read back \(drained.bytes), ended by \(drained.end))")
            }
            otherCount += 1
            try other.roundTrip("randomNumber", #"{"randomNumber":<NUM>,"context":"response","messageCount":\#(otherCount)}"#)
            try h.requireServing("after the flood")
        }
    }
}
