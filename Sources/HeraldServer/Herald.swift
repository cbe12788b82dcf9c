import Glibc
import HeraldCluster
import HeraldCore
import HeraldRedis

/// The `herald` command line, for the `herald` binary and for your own server binary:
///
///     // Sources/MyServer/main.swift
///     import HeraldActions
///     import HeraldServer
///     Herald.main(actions: BuiltinActions.all + [greet])
///
/// Every command (`start`, `stop`, `reload`, `status`, `scale`, `upgrade`, `console`) works
/// the same; the supervisor starts its workers from the binary that runs it, so they
/// serve `actions`. The load tool (`herald bench`) is not part of this library: a binary
/// that wants it links the `HeraldBenchCommand` product and passes
/// `extraCommands: [HeraldBenchCommand.command]` (the `herald` binary does).
public enum Herald {
    public static func main(actions: [Action], extraCommands: [HeraldCommand] = []) -> Never {
        let arguments = Array(CommandLine.arguments.dropFirst())
        // A password typed into the command line (`--redis redis://:PW@…`) stops
        // showing in `ps` now (it did until this point: prefer redisPasswordFile).
        ArgumentChannel.maskOwnCommandLine()
        exit(run(arguments, actions: actions, extraCommands: extraCommands))
    }

    /// Runs one command (`arguments` without the program name); returns the exit status.
    public static func run(_ arguments: [String], actions: [Action], extraCommands: [HeraldCommand] = []) -> Int32 {
        let command = arguments.first ?? "help"
        let rest = Array(arguments.dropFirst())
        if let extra = extraCommands.first(where: { $0.name == command }) {
            return extra.run(rest)
        }
        switch command {
        case "start": return StartCommand.main(rest)
        case "worker": return WorkerCommand.main(rest, actions: actions)
        case "stop", "reload", "status", "scale", "upgrade": return ClusterCommand.main(command, rest)
        case "__exec-child": return PrivateRedis.execChild(rest)  // internal: a child that dies with herald
        case "console": return ConsoleCommand.main(rest)
        case "help", "--help", "-h":
            print(Usage.main(extraCommands))
            return 0
        case "version", "--version":
            print(Version.line)
            return 0
        default:
            printError("herald: unknown command '\(command)'\n\n\(Usage.main(extraCommands))\n")
            return 2
        }
    }
}

/// A command of its own that a binary adds to Herald's command line
/// (`Herald.main(actions:extraCommands:)`): `herald <name> …` calls `run` with the
/// arguments after the name, and `herald help` lists it with `summary`.
public struct HeraldCommand: Sendable {
    public let name: String
    public let summary: String
    public let run: @Sendable ([String]) -> Int32

    public init(name: String, summary: String, run: @escaping @Sendable ([String]) -> Int32) {
        self.name = name
        self.summary = summary
        self.run = run
    }
}
