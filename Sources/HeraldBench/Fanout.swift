enum Fanout {
    static let specs: [OptionSpec] = []
    static func run(_ options: Options) throws -> Int32 { 0 }
}
