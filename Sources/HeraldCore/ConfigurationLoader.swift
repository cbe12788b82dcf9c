import Glibc
import HeraldProtocol

/// Builds a `Configuration` from its layers, each overriding the one before:
/// built-in defaults, `<configDir>/default.json`, `<configDir>/<environment>.json`,
/// `--config FILE`, `HERALD_*` environment variables, then command-line settings.
public struct ConfigurationLoader: Sendable {
    public var configDirectory: String?
    public var environmentName: String
    public var configFile: String?
    public var environment: [String: String]
    /// Settings from the command line, in the order given.
    public var overrides: [(key: String, value: JSON)]

    public init(configDirectory: String? = nil, environmentName: String = "development", configFile: String? = nil,
                environment: [String: String] = [:], overrides: [(key: String, value: JSON)] = []) {
        self.configDirectory = configDirectory
        self.environmentName = environmentName
        self.configFile = configFile
        self.environment = environment
        self.overrides = overrides
    }

    public func load() throws(ConfigurationError) -> Configuration {
        var configuration = Configuration()
        if let directory = configDirectory {
            for name in ["default.json", "\(environmentName).json"] {
                let path = directory + "/" + name
                if Self.fileExists(path) { try Self.apply(file: path, to: &configuration) }
            }
        }
        if let configFile {
            guard Self.fileExists(configFile) else { throw ConfigurationError("config file \(configFile) does not exist") }
            try Self.apply(file: configFile, to: &configuration)
        }
        for key in Configuration.keys {
            let name = Configuration.environmentName(for: key)
            if let text = environment[name] {
                try configuration.set(key, Self.value(fromText: text), source: "environment variable \(name)")
            }
        }
        for (key, value) in overrides {
            try configuration.set(key, value, source: "command line")
        }
        try configuration.validate()
        return configuration
    }

    /// A command-line or environment value: JSON when it parses as JSON, else the text itself.
    public static func value(fromText text: String) -> JSON {
        if let parsed = try? JSONParser.parse(text) {
            switch parsed {
            case .number, .bool, .string: return parsed
            default: break
            }
        }
        return .string(text)
    }

    static func apply(file path: String, to configuration: inout Configuration) throws(ConfigurationError) {
        let bytes: [UInt8]
        switch readConfigFile(path) {
        case .success(let read): bytes = read
        case .failure(let why): throw ConfigurationError("cannot read config file \(path): \(why.text)")
        }
        let parsed: JSON
        do { parsed = try JSONParser.parse(bytes) } catch {
            throw ConfigurationError("\(path): not valid JSON: \(error.message) at byte \(error.offset)")
        }
        guard case .object(let object) = parsed else { throw ConfigurationError("\(path): must hold a JSON object") }
        for (key, value) in object {
            if key.hasPrefix("_") { continue }  // comments: "_comment": "..."
            try configuration.set(key, value, source: path)
        }
    }

    static func fileExists(_ path: String) -> Bool { access(path, F_OK) == 0 }
}

/// Why a config file could not be read.
struct FileReadFailure: Error { let text: String }

/// The longest config file read.
let maxConfigFileBytes = 16 << 20

/// Reads a config file: a regular file of at most `maxConfigFileBytes`. Opened
/// non-blocking, so a FIFO or device in its place fails at once instead of hanging.
func readConfigFile(_ path: String) -> Result<[UInt8], FileReadFailure> {
    let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY)
    guard fd >= 0 else { return .failure(FileReadFailure(text: SystemErrorText.describe(errno))) }
    defer { close(fd) }
    var info = stat()
    guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG else {
        return .failure(FileReadFailure(text: "not a regular file"))
    }
    let tooLarge = FileReadFailure(text: "larger than \(maxConfigFileBytes) bytes")
    guard info.st_size <= maxConfigFileBytes else { return .failure(tooLarge) }
    var result: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65_536)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 {
            if errno == EINTR { continue }
            return .failure(FileReadFailure(text: SystemErrorText.describe(errno)))
        }
        if n == 0 { return .success(result) }
        result.append(contentsOf: chunk[0..<n])
        if result.count > maxConfigFileBytes { return .failure(tooLarge) }
    }
}

/// Reads a whole (small) file, or nil.
func readWholeFile(_ path: String, limit: Int = 64 << 20) -> [UInt8]? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var result: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65_536)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 { if errno == EINTR { continue }; return nil }
        if n == 0 { return result }
        result.append(contentsOf: chunk[0..<n])
        if result.count > limit { return nil }
    }
}
