import CHeraldSystem
import Glibc

/// `herald bench <mode> [options]`: the load tool. Modes: rr, fanout, idle, hold, soak.
public enum Bench {
    struct Mode: Sendable {
        let name: String
        let specs: [OptionSpec]
        let summary: String
        let run: @Sendable (Options) throws -> Int32
    }

    static let modes: [Mode] = [
        Mode(name: "rr", specs: RequestResponse.specs, summary: "request/response throughput and latency",
             run: { try RequestResponse.run($0) }),
        Mode(name: "fanout", specs: Fanout.specs, summary: "room broadcast: deliveries, loss, order, delivery latency",
             run: { try Fanout.run($0) }),
        Mode(name: "idle", specs: Idle.specs, summary: "server memory per idle connection",
             run: { try Idle.run($0) }),
        Mode(name: "hold", specs: Hold.specs, summary: "hold many connections from many addresses; timestamped chat deliveries",
             run: { try Hold.run($0) }),
        Mode(name: "soak", specs: Soak.specs, summary: "minutes of hostile clients; worker RSS, restarts, errors",
             run: { try Soak.run($0) }),
    ]

    static var usage: String {
        var lines = ["usage: herald bench <mode> [options]   (herald bench <mode> --help for its options)", "modes:"]
        for m in modes { lines.append("  " + m.name.padding(to: 10) + m.summary) }
        return lines.joined(separator: "\n")
    }

    /// Runs the bench with `arguments` (without the word "bench"); returns the exit code:
    /// 0 done, 1 connection or server failure, 2 bad options.
    public static func main(_ arguments: [String]) -> Int32 {
        herald_ignore_sigpipe()
        guard let first = arguments.first else {
            printError(usage)
            return 2
        }
        if first == "--help" || first == "-h" || first == "help" {
            print(usage)
            return 0
        }
        guard let mode = modes.first(where: { $0.name == first }) else {
            printError("herald bench: unknown mode '\(first)'\n" + usage)
            return 2
        }
        do {
            let options = try Options(mode: mode.name, specs: mode.specs, arguments: Array(arguments.dropFirst()))
            if options.helpRequested {
                print(options.helpText)
                return 0
            }
            return try mode.run(options)
        } catch BenchError.usage(let message) {
            printError("herald bench \(mode.name): \(message)\n(see herald bench \(mode.name) --help)")
            return 2
        } catch BenchError.failure(let message) {
            printError("herald bench \(mode.name): \(message)")
            return 1
        } catch {
            printError("herald bench \(mode.name): \(error)")
            return 1
        }
    }

    static func printError(_ text: String) {
        var line = text + "\n"
        line.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
    }
}
