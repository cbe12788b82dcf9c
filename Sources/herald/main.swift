import Glibc
import HeraldBench

// Temporary dispatcher until the real CLI lands: `herald bench <args>`.
let arguments = Array(CommandLine.arguments.dropFirst())
if arguments.first == "bench" {
    exit(Bench.main(Array(arguments.dropFirst())))
}
print("herald")
