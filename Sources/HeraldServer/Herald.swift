import Glibc
import HeraldBench
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
/// Every command (`start`, `stop`, `reload`, `status`, `scale`, `bench`, `console`) works
/// the same; the supervisor starts its workers from the binary that runs it, so they
/// serve `actions`.
public enum Herald {
    public static func main(actions: [Action]) -> Never {
        let arguments = Array(CommandLine.arguments.dropFirst())
        // A password typed into the command line (`--redis redis://:PW@…`) stops
        // showing in `ps` now (it did until this point: prefer redisPasswordFile).
        ArgumentChannel.maskOwnCommandLine()
        exit(run(arguments, actions: actions))
    }

    /// Runs one command (`arguments` without the program name); returns the exit status.
    public static func run(_ arguments: [String], actions: [Action]) -> Int32 {
        let command = arguments.first ?? "help"
        let rest = Array(arguments.dropFirst())
        switch command {
        case "start": return StartCommand.main(rest)
        case "worker": return WorkerCommand.main(rest, actions: actions)
        case "stop", "reload", "status", "scale": return ClusterCommand.main(command, rest)
        case "bench": return Bench.main(rest)
        case "__exec-child": return PrivateRedis.execChild(rest)  // internal: a child that dies with herald
        case "console": return ConsoleCommand.main(rest)
        case "help", "--help", "-h":
            print(Usage.main)
            return 0
        case "version", "--version":
            print(Version.line)
            return 0
        default:
            printError("herald: unknown command '\(command)'\n\n\(Usage.main)\n")
            return 2
        }
    }
}
