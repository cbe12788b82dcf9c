import Glibc
import HeraldClient
import HeraldProtocol
@testable import class HeraldTestSupport.ChildProcess
@testable import enum HeraldTestSupport.ExitStatus
import Testing

@Suite("herald console fed from a pipe")
struct ConsoleTests {
    /// Runs `herald console` with `input` on stdin; returns (stdout lines, exit code).
    func console(_ arguments: [String], input: String, waitMilliseconds: Int = 15_000) async throws -> (lines: [String], code: Int32?, stderr: String) {
        try await offPool { try runConsole(arguments, input: input, waitMilliseconds: waitMilliseconds) }
    }
}

/// Blocking: run it off the cooperative pool.
func runConsole(_ arguments: [String], input: String, waitMilliseconds: Int) throws -> (lines: [String], code: Int32?, stderr: String) {
        let process = try ChildProcess.herald(["console"] + arguments, stdin: .pipe, stdout: .pipe)
        defer { process.stopAndRemoveLog(grace: 1) }
        process.write(input)
        process.closeStdin()
        let output = process.readAllStdout()
        let code = process.waitForExit(timeout: Double(waitMilliseconds) / 1000)?.exitCode
        let lines = output.split(separator: "\n").map(String.init)
        return (lines, code, process.stderrText)
}

extension ConsoleTests {

    @Test("one compact reply per line, in input order, then exit 0")
    func replies() async throws {
        try await withServer { server in
            let input = "randomNumber\nparamAdd key=k v\r\nparamView key\n{\"action\":\"sleepTest\",\"params\":{\"sleepDuration\":200}}\nnoSuchAction\n"
            let (lines, code, stderr) = try await console(["--port", String(server.port)], input: input)
            #expect(code == 0, "stderr: \(stderr)")
            try #require(lines.count == 5, "lines: \(lines)")
            let replies = try lines.map { try JSONParser.parse($0).objectValue ?? JSONObject() }
            #expect(replies.map { $0["messageCount"] } == [1, 2, 3, 4, 5].map { JSON.number($0) })
            #expect(replies[0]["randomNumber"]?.numberValue != nil)
            #expect(lines[1] == #"{"status":"OK","context":"response","data":null,"messageCount":2}"#)
            #expect(replies[2]["data"] == .string("k v"))
            #expect(replies[3]["sleepDuration"] == .number(200))
            #expect(replies[4]["error"] == .string("Error: noSuchAction is not a known action."))
        }
    }

    @Test("pipelined with --window: replies still printed in input order")
    func window() async throws {
        try await withServer { server in
            let input = "{\"action\":\"sleepTest\",\"params\":{\"sleepDuration\":300}}\nrandomNumber\n"
            let (lines, code, stderr) = try await console(["--port", String(server.port), "--window", "4"], input: input)
            #expect(code == 0, "stderr: \(stderr)")
            try #require(lines.count == 2, "lines: \(lines)")
            #expect(lines[0].contains("\"sleepDuration\":300"))
            #expect(lines[1].contains("\"randomNumber\""))
        }
    }

    @Test("quit prints the goodbye and stops reading")
    func quit() async throws {
        try await withServer { server in
            let (lines, code, _) = try await console(["--port", String(server.port)], input: "randomNumber\nquit\nrandomNumber\n")
            #expect(code == 0)
            #expect(lines.count == 2)
            #expect(lines.last == #"{"status":"Bye!","context":"api","reason":"quit requested"}"#)
        }
    }

    @Test("a reply that does not come in time: a message and a non-zero exit")
    func timeout() async throws {
        try await withServer { server in
            let (lines, code, stderr) = try await console(["--port", String(server.port), "--timeout", "0.3"],
                                                    input: "{\"action\":\"sleepTest\",\"params\":{\"sleepDuration\":3000}}\n")
            #expect(code == 1)
            #expect(lines.isEmpty)
            #expect(stderr.contains("no reply"))
        }
    }

    @Test("a refused connection: a message and a non-zero exit")
    func refused() async throws {
        let port = try freePort()
        let (lines, code, stderr) = try await console(["--port", String(port)], input: "randomNumber\n")
        #expect(code == 1)
        #expect(lines.isEmpty)
        #expect(stderr.contains("cannot connect"))
    }
}
