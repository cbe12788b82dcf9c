/// A small parser for `--name value`, `--name=value` and `--flag` options.
struct OptionParser {
    struct Failure: Error, CustomStringConvertible { let description: String }

    private var arguments: [String]
    private(set) var wantsHelp = false

    init(_ arguments: [String]) { self.arguments = arguments }

    /// Calls `handle` with each option name and a function that takes its value.
    mutating func parse(_ handle: (String, () throws(Failure) -> String) throws(Failure) -> Bool) throws(Failure) {
        var index = 0
        while index < arguments.count {
            var name = arguments[index]
            var inlineValue: String?
            if name == "-h" || name == "--help" { wantsHelp = true; index += 1; continue }
            guard name.hasPrefix("--") else { throw Failure(description: "unexpected argument '\(name)'") }
            if let equals = name.firstIndex(of: "=") {
                inlineValue = String(name[name.index(after: equals)...])
                name = String(name[..<equals])
            }
            var consumed = 1
            let arguments = self.arguments
            let takeValue: () throws(Failure) -> String = { () throws(Failure) -> String in
                if let inlineValue { return inlineValue }
                guard index + 1 < arguments.count else { throw Failure(description: "\(name) needs a value") }
                consumed = 2
                return arguments[index + 1]
            }
            guard try handle(name, takeValue) else { throw Failure(description: "unknown option '\(name)'") }
            index += consumed
        }
    }
}
