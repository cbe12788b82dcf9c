import Glibc

/// libFuzzer targets for Herald's parsers. `deploy/fuzz.sh` builds this product alone with
/// `--sanitize=fuzzer -Xswiftc -DHERALD_FUZZ`: then libFuzzer's own `main` drives
/// `LLVMFuzzerTestOneInput` below, and `HERALD_FUZZ_TARGET` picks the target. A plain
/// `swift build` makes only a stub that says how to build it.
enum FuzzTarget: String, CaseIterable {
    case framer, json, resp, config

    /// Runs one input; any violated property traps (libFuzzer reports a crash).
    func run(_ input: UnsafeRawBufferPointer) {
        switch self {
        case .framer: FramerTarget.run(input)
        case .json: JSONTarget.run(input)
        case .resp: RESPTarget.run(input)
        case .config: ConfigTarget.run(input)
        }
    }

    static var names: String { allCases.map(\.rawValue).joined(separator: ", ") }

    /// The target named by `HERALD_FUZZ_TARGET`, or nil.
    static var fromEnvironment: FuzzTarget? {
        guard let name = getenv("HERALD_FUZZ_TARGET") else { return nil }
        return FuzzTarget(rawValue: String(cString: name))
    }
}

func printError(_ text: String) {
    var line = text + "\n"
    line.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
}

/// A violated property: prints what and traps, so that libFuzzer saves the input.
func fail(_ what: @autoclosure () -> String) -> Never {
    printError("herald-fuzz: " + what())
    fatalError("fuzz property violated")
}

#if HERALD_FUZZ
nonisolated(unsafe) private var selected: FuzzTarget = .framer

@_cdecl("LLVMFuzzerInitialize")
public func fuzzInitialize(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>) -> CInt {
    guard let target = FuzzTarget.fromEnvironment else {
        printError("herald-fuzz: set HERALD_FUZZ_TARGET to one of: \(FuzzTarget.names)")
        exit(2)
    }
    selected = target
    if target == .config { ConfigTarget.setUp() }
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    selected.run(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}
#else
@main
struct FuzzStub {
    static func main() {
        printError("""
            HeraldFuzz holds libFuzzer targets (\(FuzzTarget.names)); this build has no fuzzer.
            Build and run them with deploy/fuzz.sh [seconds-per-target].
            """)
        exit(2)
    }
}
#endif
