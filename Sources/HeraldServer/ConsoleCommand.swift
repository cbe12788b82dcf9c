import HeraldConsole

/// `herald console`: lives in HeraldConsole, over the HeraldClient library.
enum ConsoleCommand {
    static func main(_ arguments: [String]) -> Int32 { Console.main(arguments) }
}
