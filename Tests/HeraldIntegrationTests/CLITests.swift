import Foundation
import Glibc
import Testing
@testable import HeraldTestSupport

/// The `herald` command line and configuration precedence (flags > env > --config
/// file > defaults), as the test contract fixes it.
@Suite("CLI and configuration")
struct CLITests {
    @Test("--help and start --help exit 0 and mention --port", arguments: [["--help"], ["start", "--help"]])
    func help(arguments: [String]) throws {
        let result = try runHerald(arguments, timeout: 5)
        try check(result.status == .exited(0), "`herald \(arguments.joined(separator: " "))` must exit 0, got \(result.status); stderr: \(result.stderr)")
        try check((result.stdout + result.stderr).contains("--port"),
                  "usage must mention --port; stdout: \(result.stdout) stderr: \(result.stderr)")
    }

    @Test("an unknown flag exits non-zero and names the flag on stderr")
    func unknownFlag() throws {
        let port = try FreePort.pick()
        let result = try runHerald(["start", "--port", String(port), "--bind", "127.0.0.1", "--no-such-flag"], timeout: 5)
        try check(result.status != .exited(0), "an unknown flag must fail, got \(result.status)")
        try check(result.stderr.contains("--no-such-flag"), "stderr must name the flag: \(result.stderr)")
    }

    @Test("HERALD_PORT and HERALD_BIND choose the listening address")
    func environmentPort() throws {
        let port = try FreePort.pick()
        var options = HeraldOptions()
        options.passPortFlag = false
        options.expectedPort = port
        options.environment = ["HERALD_PORT": String(port), "HERALD_BIND": "127.0.0.1"]
        try withHerald(options) { h in
            try h.requireServing("on HERALD_PORT")
        }
    }

    @Test("--port overrides HERALD_PORT")
    func flagOverridesEnvironment() throws {
        let envPort = try FreePort.pick()
        var options = HeraldOptions()
        options.environment = ["HERALD_PORT": String(envPort), "HERALD_BIND": "127.0.0.1"]
        try withHerald(options) { h in
            try check(h.port != envPort, "the test needs two different ports")
            try h.requireServing("on the --port port")
            try check(!FreePort.isAccepting(envPort), "nothing must listen on the HERALD_PORT port \(envPort) when --port is given")
        }
    }

    @Test("a --config file sets keys; --set overrides it")
    func configFile() throws {
        let port = try FreePort.pick()
        var options = HeraldOptions([("defaultRoom", "flagRoom")])
        options.passPortFlag = false
        options.expectedPort = port
        options.configFile = #"{"port":\#(port),"bind":"127.0.0.1","welcomeMessage":"from the file","defaultRoom":"fileRoom","maxLineBytes":100}"#
        try withHerald(options) { h in
            let c = try h.connect()
            try c.expect(#"{"welcome":"from the file","room":"flagRoom","context":"api"}"#)
            try c.roundTrip(String(repeating: "z", count: 101), #"{"status":"error","error":"data length is too big (100 max)","context":"response","messageCount":1}"#)
        }
    }

    @Test("HERALD_PORT overrides the port in the --config file")
    func environmentOverridesConfig() throws {
        let filePort = try FreePort.pick()
        let envPort = try FreePort.pick()
        var options = HeraldOptions()
        options.passPortFlag = false
        options.expectedPort = envPort
        options.environment = ["HERALD_PORT": String(envPort)]
        options.configFile = #"{"port":\#(filePort),"bind":"127.0.0.1"}"#
        try withHerald(options) { h in
            try check(filePort != envPort, "the test needs two different ports")
            try h.requireServing("on HERALD_PORT")
            try check(!FreePort.isAccepting(filePort), "nothing must listen on the config file's port when HERALD_PORT is set")
        }
    }

    @Test("--set values are JSON when they parse as JSON, plain strings otherwise")
    func setValueForms() throws {
        try withHerald(HeraldOptions([("welcomeMessage", #""json string""#), ("defaultRoom", "plain room")])) { h in
            let c = try h.connect()
            try c.expect(#"{"welcome":"json string","room":"plain room","context":"api"}"#)
        }
        try withHerald(HeraldOptions([("welcomeMessage", "{not json"), ("announceJoinLeave", "true")])) { h in
            let (a, _) = try h.connectWelcomed()
            let b = try h.connect()
            try b.expect(#"{"welcome":"{not json","room":"defaultRoom","context":"api"}"#)
            try a.expect(#"{"message":"I have entered the room","room":"defaultRoom","from":"<UUID>","context":"user","sentAt":<INT>}"#)
        }
    }

    @Test("logs go to stderr, one key=value line per event")
    func logging() throws {
        var options = HeraldOptions()
        options.logLevel = "debug"
        try withHerald(options) { h in
            let (c, _) = try h.connectWelcomed()
            try c.roundTrip("randomNumber", #"{"randomNumber":<NUM>,"context":"response","messageCount":1}"#)
            try c.send("quit")
            try c.expect(#"{"status":"Bye!","context":"api","reason":"quit requested"}"#)
            usleep(100_000)
            let lines = h.stderrText().split(separator: "\n").map(String.init)
            try check(!lines.isEmpty, "--log-level debug must log something to stderr")
            let keyValue = LinePattern("<ANY>=<ANY>")
            for line in lines {
                try check(keyValue.match(line) != nil, "log line without key=value fields: \(line)")
            }
        }
    }
}
