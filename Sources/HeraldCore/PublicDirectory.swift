import Glibc
import HeraldLoop
import HeraldProtocol

/// The directory the `file` verb serves from. Only regular files inside it are served:
/// absolute paths, `..` and symlinks that lead out are refused.
struct PublicDirectory {
    /// The directory's real path, or nil when it does not exist.
    let root: String?
    let maxFileBytes = 16 << 20

    init(path: String) {
        root = Self.realPath(path)
    }

    /// The file's bytes, or nil when it must be reported as not found.
    func read(_ requested: String) -> [UInt8]? {
        guard let root, !requested.isEmpty, !requested.hasPrefix("/"),
              !requested.split(separator: "/").contains("..") else { return nil }
        guard let real = Self.realPath(root + "/" + requested), real.hasPrefix(root + "/") else { return nil }
        var info = stat()
        guard stat(real, &info) == 0, info.st_mode & S_IFMT == S_IFREG, Int(info.st_size) <= maxFileBytes else { return nil }
        return readWholeFile(real, limit: maxFileBytes)
    }

    static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(decoding: UnsafeRawBufferPointer(start: resolved, count: strlen(resolved)), as: UTF8.self)
    }
}

extension Worker {
    func sendFile(_ path: String, to connection: Connection, messageCount: Int) {
        if let bytes = publicDirectory.read(path) {
            connection.send(body: bytes)
        } else {
            connection.send {
                ReplyWriter.actionReply(fields: JSONObject(), error: "Error: That file is not found (\(path))",
                                        messageCount: messageCount, to: &$0)
            }
        }
    }
}
