import Foundation
import Glibc
import Testing
@testable import HeraldTestSupport

/// Issue 13: connection.open/close lines are bounded per second (`connectionLogRate`);
/// the rest are summed up in one summary line a second, still found by
/// `grep connection.close`.
@Suite("Connection log at scale", .serialized)
struct ConnectionLogTests {
    static func field(_ name: String, _ line: String) -> Int {
        guard let range = line.range(of: " \(name)=") else { return 0 }
        return Int(line[range.upperBound...].prefix { $0.isNumber }) ?? 0
    }

    @Test("past connectionLogRate a second, opens and closes are summarized, none lost")
    func summarizedPastTheRate() throws {
        var options = HeraldOptions([("connectionLogRate", "5")])
        options.logLevel = "info"
        try withHerald(options) { server in
            var clients: [LineClient] = []
            for _ in 0..<40 {
                let client = try LineClient(port: server.port)
                _ = try client.readLine()
                clients.append(client)
            }
            for client in clients { try client.send("randomNumber") }
            for client in clients { _ = try client.readLine() }
            for client in clients { client.close() }
            // Every open and close is accounted for, one by one or in a summary.
            func total(_ event: String) -> (single: Int, suppressed: Int, messages: Int, client: Int) {
                let singles = server.logLines(containing: "event=\(event) ")
                let summaries = server.logLines(containing: "event=\(event).summary ")
                return (singles.count, summaries.reduce(0) { $0 + Self.field("suppressed", $1) },
                        (singles + summaries).reduce(0) { $0 + Self.field("messages", $1) },
                        summaries.reduce(0) { $0 + Self.field("client", $1) })
            }
            let deadline = Deadline(5)
            while !deadline.passed {
                let (opens, closes) = (total("connection.open"), total("connection.close"))
                if opens.single + opens.suppressed >= 40 && closes.single + closes.suppressed == opens.single + opens.suppressed { break }
                usleep(50_000)
            }
            let opens = total("connection.open"), closes = total("connection.close")
            #expect(opens.suppressed > 0 && closes.suppressed > 0, "summary lines: \(server.logLines(containing: ".summary"))")
            #expect(opens.single < 40, "\(opens.single) connection.open lines for 40 connections at connectionLogRate=5")
            #expect(opens.single + opens.suppressed == closes.single + closes.suppressed)
            #expect(opens.single + opens.suppressed >= 40)
            // 40 randomNumbers and the start-up probe's quit: every request counted once.
            #expect(closes.messages == 41, "messages= over the close lines and summaries")
            #expect(closes.client > 0 && closes.client <= closes.suppressed, "the clients' closes are summarized by reason")
        }
    }

    @Test("connectionLogRate is validated")
    func validated() throws {
        let result = try runHerald(["start", "--port", "0", "--bind", "127.0.0.1", "--set", "connectionLogRate=-1"])
        #expect(result.status == .exited(2))
        #expect(result.stderr.contains("connectionLogRate must be a whole number from 0 to 10000000"), "\(result.stderr)")
    }
}
