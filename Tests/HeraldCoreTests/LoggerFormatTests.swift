import Foundation
import Glibc
import HeraldLoop
import HeraldProtocol
import Testing
@testable import HeraldCore

/// The JSON log format escapes what it is given, and logFormat is validated.
@Suite struct LoggerFormatTests {
    @Test func jsonLinesEscapeEveryValue() throws {
        let path = FileManager.default.temporaryDirectory.path + "/herald-logger-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).log"
        defer { unlink(path) }
        let logger = Logger()
        try logger.configure(level: .info, file: path, fields: [("role", "test")],
                             format: .json(writeString: { JSONWriter.writeString($0, to: &$1) }))
        let tricky = "quote\" backslash\\ newline\n tab\t nul\u{0} bell\u{7} é 😀 </script>"
        logger.info("ev\"ent", ["key": tricky, "empty": ""])
        logger.debug("hidden", [:])
        logger.flush()
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines.count == 2 && lines[1].isEmpty, "one line, newline-terminated: \(text)")
        let object = try JSONParser.parse(String(lines[0]))
        guard case .object(let members) = object else { Issue.record("not an object"); return }
        #expect(members.map(\.key) == ["time", "level", "event", "role", "key", "empty"])
        #expect(members["level"] == .string("info"))
        #expect(members["event"] == .string("ev\"ent"))
        #expect(members["key"] == .string(tricky))
        #expect(members["empty"] == .string(""))
        #expect(members["time"]?.stringValue?.hasSuffix("Z") == true)
    }

    @Test func reopenFollowsThePath() throws {
        let path = FileManager.default.temporaryDirectory.path + "/herald-logger-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).log"
        defer { unlink(path); unlink(path + ".1") }
        let logger = Logger()
        try logger.configure(level: .info, file: path)
        logger.info("before", [:])
        logger.flush()
        #expect(rename(path, path + ".1") == 0)
        logger.info("still.old", [:])
        #expect(logger.reopen() == nil)
        logger.info("after", [:])
        logger.flush()
        let old = try String(contentsOfFile: path + ".1", encoding: .utf8)
        let new = try String(contentsOfFile: path, encoding: .utf8)
        #expect(old.contains("event=before") && old.contains("event=still.old") && !old.contains("event=after"))
        #expect(new.contains("event=after") && !new.contains("event=before"))
    }

    @Test func logFormatIsValidated() throws {
        #expect(try ConfigurationLoader(overrides: [("logFormat", .string("json"))]).load().logFormat == "json")
        #expect(try ConfigurationLoader().load().logFormat == "text")
        #expect(throws: ConfigurationError.self) { try ConfigurationLoader(overrides: [("logFormat", .string("xml"))]).load() }
    }
}
