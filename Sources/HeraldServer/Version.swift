/// What `herald version` prints: `herald 0.2.0-dev (Swift 6.3, Linux x86_64)`. The
/// version number itself is `Usage.version`, its one place.
enum Version {
    static var line: String { "herald \(Usage.version) (Swift \(compiler), \(platform))" }

    /// The compiler this binary was built with (to its minor version).
    static var compiler: String {
        #if compiler(>=6.5)
        return "6.5 or later"
        #elseif compiler(>=6.4)
        return "6.4"
        #elseif compiler(>=6.3)
        return "6.3"
        #elseif compiler(>=6.2)
        return "6.2"
        #elseif compiler(>=6.1)
        return "6.1"
        #else
        return "6.0"
        #endif
    }

    static var platform: String {
        #if os(Linux)
        let os = "Linux"
        #else
        let os = "unknown OS"
        #endif
        #if arch(x86_64)
        return os + " x86_64"
        #elseif arch(arm64)
        return os + " arm64"
        #else
        return os
        #endif
    }
}
