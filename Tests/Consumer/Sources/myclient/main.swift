import Glibc
import HeraldClient
import HeraldProtocol

// docs/client.md's use of the client: connect, call an action, print the reply, leave.
let port = Int(CommandLine.arguments.dropFirst().first ?? "5000") ?? 5000
do {
    let client = try await HeraldClient.connect(host: "127.0.0.1", port: port)
    let reply = try await client.action("greet", params: ["name": "Ada", "greeting": "Hi"], timeout: .seconds(5))
    print("greet: \(reply["message"]?.stringValue ?? "?")")
    await client.disconnect()
} catch {
    print("myclient failed: \(error)")
    exit(1)
}
