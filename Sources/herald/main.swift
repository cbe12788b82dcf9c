import HeraldActions
import HeraldBenchCommand
import HeraldServer

// The herald binary: the command line with the built-in actions and the load tool.
Herald.main(actions: BuiltinActions.all, extraCommands: [HeraldBenchCommand.command])
