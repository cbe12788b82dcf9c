import HeraldCore
import HeraldProtocol
import Testing
@testable import HeraldRedis

@Suite struct RedisReplyTests {
    private func decode(_ text: String) throws -> [RedisReply] {
        try RedisReply.decode(resp: Array(text.utf8))
    }

    @Test func scalars() throws {
        #expect(try decode("+OK\r\n") == [.status("OK")])
        #expect(try decode("-ERR wrong\r\n") == [.error("ERR wrong")])
        #expect(try decode(":42\r\n:-7\r\n") == [.integer(42), .integer(-7)])
        #expect(try decode("$5\r\nhello\r\n") == [.string(Array("hello".utf8))])
        #expect(try decode("$0\r\n\r\n") == [.string([])])
        #expect(try decode("$-1\r\n") == [.null])
    }

    @Test func binarySafeBulk() throws {
        let bytes: [UInt8] = [0, 13, 10, 255]
        let reply = try RedisReply.decode(resp: Array("$4\r\n".utf8) + bytes + Array("\r\n".utf8))
        #expect(reply == [.string(bytes)])
    }

    @Test func nestedArrays() throws {
        #expect(try decode("*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n*2\r\n:1\r\n$-1\r\n")
                == [.array([.string(Array("message".utf8)), .string(Array("ch".utf8)), .array([.integer(1), .null])])])
        #expect(try decode("*0\r\n") == [.array([])])
        #expect(try decode("*-1\r\n") == [.null])
    }

    @Test func partialInputWaits() throws {
        #expect(try decode("$5\r\nhel") == [])
    }

    @Test func malformedInputThrows() {
        #expect(throws: RedisError.self) { try decode("?what\r\n") }
    }

    @Test func accessors() {
        #expect(RedisReply.string(Array("12".utf8)).integer == 12)
        #expect(RedisReply.status("OK").text == "OK")
        #expect(RedisReply.null.text == nil)
    }

    @Test func errorsSayWhatHappened() {
        #expect(RedisError.unavailable("Connection refused").description == "redis is unavailable (Connection refused)")
        #expect(RedisError.timeout(2000).description == "redis did not answer within 2000 ms")
    }

    @Test func cacheEntryRoundTrip() throws {
        let entry = CacheEntry(value: .object(JSONObject([("a", .number(1)), ("b", .string("x\ny"))])),
                               expireTimestamp: 1_700_000_005_000, createdAt: 1_700_000_000_000, readAt: nil)
        #expect(RedisCache.decode(RedisCache.encode(entry)) == entry)
        let forever = CacheEntry(value: .string("v"), expireTimestamp: nil, createdAt: 5, readAt: nil)
        #expect(RedisCache.decode(RedisCache.encode(forever)) == forever)
        #expect(RedisCache.decode(Array("junk".utf8)) == nil)
    }
}
