import Glibc
import HeraldCore

/// Writes a message to standard error, less any password in it (`redis://:***@…`).
func printError(_ message: String) {
    var bytes = Array(Secrets.redact(message).utf8)
    if bytes.last != UInt8(ascii: "\n") { bytes.append(UInt8(ascii: "\n")) }
    bytes.withUnsafeBytes { _ = write(2, $0.baseAddress, $0.count) }
}
