/// Command-line options of one bench mode: `--name value`, `--name=value` and flags.
/// Every option has a default and a help line; unknown or malformed options are a
/// usage error (exit 2).
struct OptionSpec: Sendable {
    let name: String          // without the leading "--"
    let defaultValue: String? // nil for flags
    let help: String
    var isFlag: Bool { defaultValue == nil }
}

struct Options {
    let mode: String
    private let specs: [OptionSpec]
    private var values: [String: String] = [:]
    private(set) var helpRequested = false

    init(mode: String, specs: [OptionSpec], arguments: [String]) throws {
        self.mode = mode
        self.specs = specs
        var i = 0
        while i < arguments.count {
            let arg = arguments[i]
            i += 1
            if arg == "--help" || arg == "-h" { helpRequested = true; continue }
            guard arg.hasPrefix("--"), arg.count > 2 else {
                throw BenchError.usage("unexpected argument '\(arg)'")
            }
            var name = String(arg.dropFirst(2))
            var inline: String?
            if let eq = name.firstIndex(of: "=") {
                inline = String(name[name.index(after: eq)...])
                name = String(name[..<eq])
            }
            guard let spec = specs.first(where: { $0.name == name }) else {
                throw BenchError.usage("unknown option --\(name) for '\(mode)'")
            }
            if spec.isFlag {
                if inline != nil { throw BenchError.usage("--\(name) takes no value") }
                values[name] = "true"
            } else if let inline {
                values[name] = inline
            } else {
                guard i < arguments.count else { throw BenchError.usage("--\(name) needs a value") }
                values[name] = arguments[i]
                i += 1
            }
        }
    }

    var helpText: String {
        var lines = ["usage: herald bench \(mode) [options]", "options:"]
        for spec in specs {
            let left = spec.isFlag ? "  --\(spec.name)" : "  --\(spec.name) <\(spec.defaultValue!.isEmpty ? "value" : spec.defaultValue!)>"
            lines.append(left.padding(to: 30) + spec.help)
        }
        lines.append("  --help".padding(to: 30) + "this text")
        return lines.joined(separator: "\n")
    }

    func isSet(_ name: String) -> Bool { values[name] != nil }

    func flag(_ name: String) -> Bool { values[name] != nil }

    func string(_ name: String) -> String {
        values[name] ?? spec(name).defaultValue ?? ""
    }

    func int(_ name: String, min: Int = 0, max: Int = Int.max) throws -> Int {
        let text = string(name)
        guard let n = Int(text), n >= min, n <= max else {
            let range = max == Int.max ? ">= \(min)" : "in \(min)...\(max)"
            throw BenchError.usage("--\(name) must be an integer \(range), got '\(text)'")
        }
        return n
    }

    func seconds(_ name: String, min: Double = 0) throws -> Double {
        let text = string(name)
        guard let d = Double(text), d.isFinite, d >= min, d <= 86_400 else {
            throw BenchError.usage("--\(name) must be a number of seconds >= \(Format.fixed(min, 1)), got '\(text)'")
        }
        return d
    }

    func choice(_ name: String, _ allowed: [String]) throws -> String {
        let text = string(name)
        guard allowed.contains(text) else {
            throw BenchError.usage("--\(name) must be one of \(allowed.joined(separator: "|")), got '\(text)'")
        }
        return text
    }

    private func spec(_ name: String) -> OptionSpec {
        guard let s = specs.first(where: { $0.name == name }) else {
            preconditionFailure("option --\(name) is not declared for \(mode)")
        }
        return s
    }
}

extension String {
    func padding(to width: Int) -> String {
        count >= width ? self + " " : self + String(repeating: " ", count: width - count)
    }
}
