import Testing
import HeraldProtocol

/// Each reply line, byte for byte, as PROTOCOL.md shows it.
@Suite struct ReplyLines {
    @Test func welcome() {
        #expect(written { ReplyWriter.welcome(ReplyWriter.defaultWelcome, room: "defaultRoom", to: &$0) }
            == "{\"welcome\":\"Hello! Welcome to the actionhero api\",\"room\":\"defaultRoom\",\"context\":\"api\"}\r\n")
        #expect(written { ReplyWriter.welcome("Hi \"you\"", room: nil, to: &$0) }
            == "{\"welcome\":\"Hi \\\"you\\\"\",\"context\":\"api\"}\r\n")
    }

    @Test func goodbye() {
        for reason in ["quit requested", "exit requested", "close requested", "server shutdown", "break-character"] {
            #expect(written { ReplyWriter.goodbye(reason: reason, to: &$0) }
                == "{\"status\":\"Bye!\",\"context\":\"api\",\"reason\":\"" + reason + "\"}\r\n")
        }
    }

    @Test func verbReplies() {
        #expect(written { ReplyWriter.verbReply(status: "OK", data: .null, messageCount: 1, to: &$0) }
            == "{\"status\":\"OK\",\"context\":\"response\",\"data\":null,\"messageCount\":1}\r\n")
        #expect(written { ReplyWriter.verbReply(status: "OK", data: nil, messageCount: 7, to: &$0) }
            == "{\"status\":\"OK\",\"context\":\"response\",\"messageCount\":7}\r\n")
        #expect(written { ReplyWriter.verbReply(status: "connection already in this room", data: false, messageCount: 3, to: &$0) }
            == "{\"status\":\"connection already in this room\",\"context\":\"response\",\"data\":false,\"messageCount\":3}\r\n")
        #expect(written { ReplyWriter.verbReply(status: "OK", data: ["action": "randomNumber", "key": "a b=c"], messageCount: 12, to: &$0) }
            == "{\"status\":\"OK\",\"context\":\"response\",\"data\":{\"action\":\"randomNumber\",\"key\":\"a b=c\"},\"messageCount\":12}\r\n")
    }

    @Test func randomNumberReply() {
        #expect(written { ReplyWriter.actionReply(fields: ["randomNumber": 0.4977603426668793], error: nil, messageCount: 2, to: &$0) }
            == "{\"randomNumber\":0.4977603426668793,\"context\":\"response\",\"messageCount\":2}\r\n")
    }

    @Test func cacheTestReplyShape() {
        let loadResp: JSONObject = [
            "key": "cacheTest_k", "value": "v", "expireTimestamp": 1368918941984,
            "createdAt": 1368918936984, "readAt": 1368918936985,
        ]
        let fields: JSONObject = [
            "cacheTestResults": ["saveResp": true, "sizeResp": 1, "loadResp": .object(loadResp), "deleteResp": true],
        ]
        #expect(written { ReplyWriter.actionReply(fields: fields, error: nil, messageCount: 4, to: &$0) }
            == "{\"cacheTestResults\":{\"saveResp\":true,\"sizeResp\":1,\"loadResp\":{\"key\":\"cacheTest_k\",\"value\":\"v\",\"expireTimestamp\":1368918941984,\"createdAt\":1368918936984,\"readAt\":1368918936985},\"deleteResp\":true},\"context\":\"response\",\"messageCount\":4}\r\n")
    }

    @Test func errorReplies() {
        #expect(written { ReplyWriter.actionReply(fields: [:], error: "Error: {no action} is not a known action.", messageCount: 5, to: &$0) }
            == "{\"error\":\"Error: {no action} is not a known action.\",\"context\":\"response\",\"messageCount\":5}\r\n")
        #expect(written { ReplyWriter.actionReply(fields: ["partial": 1], error: "Error: key is a required parameter for this action", messageCount: 6, to: &$0) }
            == "{\"partial\":1,\"error\":\"Error: key is a required parameter for this action\",\"context\":\"response\",\"messageCount\":6}\r\n")
        #expect(written { ReplyWriter.actionReply(fields: [:], error: "Error: That file is not found (x)", messageCount: 8, to: &$0) }
            == "{\"error\":\"Error: That file is not found (x)\",\"context\":\"response\",\"messageCount\":8}\r\n")
    }

    @Test func reservedFieldNamesAreSkipped() {
        let fields: JSONObject = ["a": 1, "error": "inner", "context": "x", "messageCount": 99, "b": 2]
        #expect(written { ReplyWriter.actionReply(fields: fields, error: nil, messageCount: 9, to: &$0) }
            == "{\"a\":1,\"b\":2,\"context\":\"response\",\"messageCount\":9}\r\n")
        #expect(written { ReplyWriter.actionReply(fields: fields, error: "E", messageCount: 9, to: &$0) }
            == "{\"a\":1,\"b\":2,\"error\":\"E\",\"context\":\"response\",\"messageCount\":9}\r\n")
    }

    @Test func sleepTestReply() {
        let fields: JSONObject = ["sleepStarted": 1368918936984, "sleepEnded": 1368918937985, "sleepDelta": 1001, "sleepDuration": 1000]
        #expect(written { ReplyWriter.actionReply(fields: fields, error: nil, messageCount: 10, to: &$0) }
            == "{\"sleepStarted\":1368918936984,\"sleepEnded\":1368918937985,\"sleepDelta\":1001,\"sleepDuration\":1000,\"context\":\"response\",\"messageCount\":10}\r\n")
    }

    @Test func chatLine() {
        #expect(written { ReplyWriter.chat(message: "hooray!", room: "defaultRoom", from: "2d68c389-521d-4dc6-b4f1-8292cd6cbde6", sentAt: 1368918936984, to: &$0) }
            == "{\"message\":\"hooray!\",\"room\":\"defaultRoom\",\"from\":\"2d68c389-521d-4dc6-b4f1-8292cd6cbde6\",\"context\":\"user\",\"sentAt\":1368918936984}\r\n")
        #expect(written { ReplyWriter.chat(message: "I have entered the room", room: "r", from: 0, sentAt: 5, to: &$0) }
            == "{\"message\":\"I have entered the room\",\"room\":\"r\",\"from\":0,\"context\":\"user\",\"sentAt\":5}\r\n")
    }

    @Test func keepAlive() {
        #expect(written { ReplyWriter.keepAlive(serverTime: 1368918936984, to: &$0) }
            == "{\"status\":\"keep-alive\",\"context\":\"api\",\"serverTime\":1368918936984}\r\n")
    }

    @Test func tooLong() {
        #expect(written { ReplyWriter.tooLong(maxLineBytes: 1048576, messageCount: 3, to: &$0) }
            == "{\"status\":\"error\",\"error\":\"data length is too big (1048576 max)\",\"context\":\"response\",\"messageCount\":3}\r\n")
    }

    @Test func repliesAppendToTheBuffer() {
        var out: [UInt8] = []
        ReplyWriter.keepAlive(serverTime: 1, to: &out)
        ReplyWriter.keepAlive(serverTime: 2, to: &out)
        #expect(String(decoding: out, as: UTF8.self)
            == "{\"status\":\"keep-alive\",\"context\":\"api\",\"serverTime\":1}\r\n{\"status\":\"keep-alive\",\"context\":\"api\",\"serverTime\":2}\r\n")
    }

    @Test func everyReplyIsOneJSONLine() throws {
        var out: [UInt8] = []
        ReplyWriter.chat(message: "multi\nline\r\u{0}", room: "r", from: "id", sentAt: 1, to: &out)
        #expect(out.suffix(2) == [0x0D, 0x0A])
        let body = Array(out.dropLast(2))
        #expect(!body.contains(0x0A) && !body.contains(0x0D))
        #expect(try JSONParser.parse(body).objectValue?["message"] == "multi\nline\r\u{0}")
    }
}
