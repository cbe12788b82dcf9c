import Testing
@testable import HeraldTestSupport

/// Room limits: a client cannot grow a worker's memory by joining rooms without end.
@Suite("Room limits")
struct RoomLimitTests {
    @Test("roomAdd past maxRoomsPerConnection or with a name over maxRoomNameBytes is refused; the connection goes on")
    func roomLimits() throws {
        try withHerald(HeraldOptions([("maxRoomsPerConnection", "3"), ("maxRoomNameBytes", "10")])) { server in
            let (client, _) = try server.connectWelcomed()   // in defaultRoom: 1 of 3
            try client.send("roomAdd a")
            try expectLine(try client.readLine(), #"{"status":"OK","context":"response","data":true,"messageCount":1}"#)
            try client.send("roomAdd b")
            try expectLine(try client.readLine(), #"{"status":"OK","context":"response","data":true,"messageCount":2}"#)
            try client.send("roomAdd c")
            try expectLine(try client.readLine(), #"{"status":"too many rooms (3 max)","context":"response","data":false,"messageCount":3}"#)
            try client.send("roomLeave b")
            try expectLine(try client.readLine(), #"{"status":"OK","context":"response","data":true,"messageCount":4}"#)
            try client.send("roomAdd abcdefghijk")
            try expectLine(try client.readLine(), #"{"status":"room names are at most 10 bytes","context":"response","data":false,"messageCount":5}"#)
            try client.send("roomChange abcdefghijk")
            try expectLine(try client.readLine(), #"{"status":"room names are at most 10 bytes","context":"response","data":false,"messageCount":6}"#)
            try client.send("roomAdd abcdefghij")
            try expectLine(try client.readLine(), #"{"status":"OK","context":"response","data":true,"messageCount":7}"#)
            try client.send("detailsView")
            let details = try JSON.parse(try client.readLine())
            #expect(details["data"]?["rooms"]?.arrayValue?.compactMap(\.stringValue) == ["defaultRoom", "a", "abcdefghij"])
        }
    }
}
