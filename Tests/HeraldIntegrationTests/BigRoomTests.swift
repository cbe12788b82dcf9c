import Foundation
import Glibc
import Testing
@testable import HeraldTestSupport

/// A room with more members on one worker than it writes to in one loop iteration
/// (`Worker.flushesPerIteration`, 1,024): the lines go out in slices across iterations,
/// each member's in order, none left behind in the queue.
@Suite("A room bigger than a flush slice", .serialized)
struct BigRoomTests {
    @Test("three says to 2,600 members of one worker reach every member, in order, and the worker serves meanwhile")
    func saysToABigRoomReachEveryMemberInOrder() throws {
        ClusterTests.raiseFileLimit()
        try withHerald { h in
            let (sender, senderId) = try h.connectWithId()
            var members: [LineClient] = []
            defer { members.forEach { $0.close() } }
            for _ in 0..<2_600 { members.append(try h.connectWelcomed().0) }
            // Sent together: the three lines reach the members while earlier slices are
            // still being written.
            try sender.sendRaw("say one\r\nsay two\r\nsay three\r\nrandomNumber\r\n")
            for count in 2...4 { try sender.expect(RoomsChatTests.sayOK + "\(count)}") }
            try sender.expect(#"{"randomNumber":<NUM>,"context":"response","messageCount":5}"#)
            for (index, member) in members.enumerated() {
                for message in ["one", "two", "three"] {
                    do {
                        try member.expect(RoomsChatTests.chat(message, room: "defaultRoom", from: senderId), timeout: 20)
                    } catch {
                        throw HarnessError.mismatch("member \(index) of 2,600, say \"\(message)\": \(error)")
                    }
                }
            }
            try h.requireServing("after says to a big room")
        }
    }
}
