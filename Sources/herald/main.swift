import HeraldActions
import HeraldServer

// The herald binary: the command line with the built-in actions.
Herald.main(actions: BuiltinActions.all)
