import Glibc
import HeraldBench
import HeraldRedis

// herald <command> [options]
let arguments = Array(CommandLine.arguments.dropFirst())
let command = arguments.first ?? "help"
let rest = Array(arguments.dropFirst())

let status: Int32
switch command {
case "start": status = StartCommand.main(rest)
case "worker": status = WorkerCommand.main(rest)
case "stop", "reload", "status", "scale": status = ClusterCommand.main(command, rest)
case "bench": status = Bench.main(rest)
case "__exec-child": status = PrivateRedis.execChild(rest)  // internal: a child that dies with herald
case "console": status = ConsoleCommand.main(rest)
case "help", "--help", "-h": print(Usage.main); status = 0
case "version", "--version": print("herald \(Usage.version)"); status = 0
default:
    printError("herald: unknown command '\(command)'\n\n\(Usage.main)\n")
    status = 2
}
exit(status)
