import Glibc

/// Secrets in settings and on command lines: the Redis password. Herald never writes one
/// into a log line, an error message or another process's argv; `redact` is what it
/// writes instead (`redis://:***@host:6379`).
public enum Secrets {
    /// Settings whose value is a secret.
    public static let keys: Set<String> = ["redisPassword"]

    /// `text` with every URL password (`scheme://user:PASSWORD@host`, `?password=…`) and
    /// every `redisPassword=…` replaced by `***`. `wholeText`: `text` is one value (a URL
    /// or one command-line argument), so a password may contain spaces; otherwise a URL
    /// ends at whitespace or a quote.
    public static func redact(_ text: String, wholeText: Bool = false) -> String {
        guard text.contains("://") || text.contains("password=") || text.contains("Password=") else { return text }
        var bytes = Array(text.utf8)
        var changed = false
        // scheme://userinfo@host: the userinfo ends at the last '@' of the URL, as
        // RedisEndpoint.parse reads it.
        var searchFrom = 0
        while let schemeEnd = find(Array("://".utf8), in: bytes, from: searchFrom) {
            let start = schemeEnd + 3
            var end = start
            while end < bytes.count, wholeText || !isURLEnd(bytes[end]) { end += 1 }
            if let at = bytes[start..<end].lastIndex(of: UInt8(ascii: "@")) {
                let colon = bytes[start..<at].firstIndex(of: UInt8(ascii: ":"))
                let secretStart = colon.map { $0 + 1 } ?? start
                if secretStart < at {
                    bytes.replaceSubrange(secretStart..<at, with: Array("***".utf8))
                    changed = true
                    end = secretStart + 3 + (end - at)
                }
            }
            searchFrom = max(end, start)
        }
        // password=VALUE (a unix:// URL's query) and redisPassword=VALUE (--set).
        for marker in ["password=", "Password="] {
            let needle = Array(marker.utf8)
            var from = 0
            while let found = find(needle, in: bytes, from: from) {
                let start = found + needle.count
                var end = start
                let isSetting = marker == "Password=" && found >= 5 && Array(bytes[(found - 5)..<found]) == Array("redis".utf8)
                guard marker == "password=" || isSetting else { from = start; continue }
                while end < bytes.count, bytes[end] != UInt8(ascii: "&"), wholeText || !isURLEnd(bytes[end]) { end += 1 }
                if Array(bytes[start..<end]) != Array("***".utf8) {
                    bytes.replaceSubrange(start..<end, with: Array("***".utf8))
                    changed = true
                }
                from = start + 3
            }
        }
        return changed ? String(decoding: bytes, as: UTF8.self) : text
    }

    /// Command-line arguments as another process may show them: each one redacted.
    public static func redact(arguments: [String]) -> [String] {
        arguments.map { redact($0, wholeText: true) }
    }

    /// Whether `text` holds something `redact` would hide.
    public static func containsSecret(_ text: String, wholeText: Bool = false) -> Bool {
        redact(text, wholeText: wholeText) != text
    }

    /// The longest password file read.
    public static let maxPasswordFileBytes = 4_096

    /// The password in `path` (`redisPasswordFile`): the whole file less trailing line
    /// breaks. Errors name the file, never its contents.
    public static func readPasswordFile(_ path: String, setting: String = "redisPasswordFile") throws(ConfigurationError) -> String {
        // O_NONBLOCK: a FIFO in its place must not hang the start. Symbolic links are
        // followed (Kubernetes and systemd credentials are links).
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY)
        guard fd >= 0 else {
            throw ConfigurationError("\(setting) \(path): cannot open it: \(SystemErrorText.describe(errno))")
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG else {
            throw ConfigurationError("\(setting) \(path): not a regular file")
        }
        guard info.st_size <= maxPasswordFileBytes else {
            throw ConfigurationError("\(setting) \(path): larger than \(maxPasswordFileBytes) bytes; it must hold only the password")
        }
        var bytes = [UInt8](repeating: 0, count: maxPasswordFileBytes + 1)
        var count = 0
        while count < bytes.count {
            let n = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress! + count, $0.count - count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw ConfigurationError("\(setting) \(path): cannot read it: \(SystemErrorText.describe(errno))")
            }
            if n == 0 { break }
            count += n
        }
        guard count <= maxPasswordFileBytes else {
            throw ConfigurationError("\(setting) \(path): larger than \(maxPasswordFileBytes) bytes; it must hold only the password")
        }
        while count > 0, bytes[count - 1] == UInt8(ascii: "\n") || bytes[count - 1] == UInt8(ascii: "\r") { count -= 1 }
        guard count > 0 else { throw ConfigurationError("\(setting) \(path): the file is empty") }
        guard !bytes[0..<count].contains(where: { $0 == 0 || $0 == UInt8(ascii: "\n") || $0 == UInt8(ascii: "\r") }) else {
            throw ConfigurationError("\(setting) \(path): the password must be one line without NUL bytes")
        }
        guard let text = String(validating: bytes[0..<count], as: UTF8.self) else {
            throw ConfigurationError("\(setting) \(path): the password is not UTF-8 text")
        }
        return text
    }

    private static func isURLEnd(_ byte: UInt8) -> Bool {
        byte <= 0x20 || byte == UInt8(ascii: "'") || byte == UInt8(ascii: "\"") || byte == 0x7f
    }

    private static func find(_ needle: [UInt8], in haystack: [UInt8], from: Int) -> Int? {
        guard needle.count <= haystack.count else { return nil }
        var index = from
        while index + needle.count <= haystack.count {
            if haystack[index] == needle[0], Array(haystack[index..<(index + needle.count)]) == needle { return index }
            index += 1
        }
        return nil
    }
}

/// `strerror` as Swift text.
enum SystemErrorText {
    static func describe(_ code: Int32) -> String {
        guard let text = strerror(code) else { return "errno \(code)" }
        return String(cString: text)
    }
}
