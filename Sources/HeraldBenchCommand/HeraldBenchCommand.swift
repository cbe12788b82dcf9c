import HeraldBench
import HeraldServer

/// `herald bench` (the load tool: rr, fanout, idle, soak) as a command a binary adds to
/// Herald's command line. The `herald` binary registers it; a server binary of your own
/// leaves it out unless it links this product and passes it too:
///
///     Herald.main(actions: BuiltinActions.all + [greet], extraCommands: [HeraldBenchCommand.command])
public enum HeraldBenchCommand {
    public static let command = HeraldCommand(
        name: "bench",
        summary: "the load tool: rr, fanout, idle, soak (see `herald bench --help`)"
    ) { arguments in
        Bench.main(arguments)
    }
}
