import CHeraldSystem
import Glibc
import HeraldLoop
import HeraldProtocol

/// The directory the `file` verb serves from. Only regular files inside it are served:
/// absolute paths, `..`, a NUL byte, and symlinks anywhere below the directory (even ones
/// that stay inside) are refused. The directory itself may be a symlink (it is resolved
/// once, at start).
struct PublicDirectory {
    /// The directory's real path, or nil when it does not exist.
    let root: String?
    /// Larger files are not found (PROTOCOL.md §7; docs/protocol.md, Files).
    let maxFileBytes = 16 << 20
    /// Bytes read from a file per step: a file is read this much at a time as the
    /// client's socket drains, into `chunk` (one buffer for the whole worker).
    static let chunkBytes = 65_536
    /// Chunks one connection may send per loop iteration before others get a turn.
    static let chunksPerTurn = 4
    /// What the kernel is asked to read ahead when the next chunk is not in the page cache.
    static let readAheadBytes = 1 << 20
    let chunk: UnsafeMutableRawBufferPointer

    init(path: String) {
        root = Self.realPath(path)
        chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: Self.chunkBytes, alignment: 16)
    }

    /// The components of a requested path below the directory, or nil when it can never
    /// be served (empty, absolute, `..`, a NUL byte, a trailing `/`). `.` and empty
    /// components are skipped.
    static func components(of requested: String) -> [String]? {
        guard !requested.isEmpty, !requested.hasPrefix("/"), !requested.hasSuffix("/"),
              !requested.utf8.contains(0) else { return nil }
        var parts: [String] = []
        for part in requested.split(separator: "/") where part != "." {
            if part == ".." { return nil }
            parts.append(String(part))
        }
        return parts.isEmpty ? nil : parts
    }

    /// Opens the file (non-blocking, close-on-exec), walking the path one directory at a
    /// time without following any symlink; nil when it must be reported as not found.
    func open(_ requested: String) -> (fd: Int32, size: Int)? {
        guard let root, let parts = Self.components(of: requested) else { return nil }
        var directory = Glibc.open(root, HERALD_O_PATH | O_DIRECTORY | O_CLOEXEC)
        guard directory >= 0 else { return nil }
        defer { close(directory) }
        for part in parts.dropLast() {
            // A symlink here fails with ENOTDIR: O_NOFOLLOW opens the link itself.
            let next = openat(directory, part, HERALD_O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            guard next >= 0 else { return nil }
            close(directory)
            directory = next
        }
        let name = parts[parts.count - 1]
        // Checked before opening, so that a FIFO or a device is never opened at all.
        var info = stat()
        guard fstatat(directory, name, &info, AT_SYMLINK_NOFOLLOW) == 0, Self.isServable(info, limit: maxFileBytes) else {
            return nil
        }
        let fd = openat(directory, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        // And again on what was opened, in case the entry was replaced meanwhile.
        guard fstat(fd, &info) == 0, Self.isServable(info, limit: maxFileBytes) else {
            close(fd)
            return nil
        }
        return (fd, Int(info.st_size))
    }

    private static func isServable(_ info: stat, limit: Int) -> Bool {
        info.st_mode & S_IFMT == S_IFREG && info.st_size >= 0 && Int(info.st_size) <= limit
    }

    static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(decoding: UnsafeRawBufferPointer(start: resolved, count: strlen(resolved)), as: UTF8.self)
    }
}

/// A `file` request in a connection's output: what was queued before it, then the file,
/// which is opened when its turn comes and read a chunk at a time as the socket drains,
/// from the page cache only (what is not cached yet is read ahead by the kernel while the
/// loop goes on). Only the file's position is held, never its bytes.
@LoopActor
final class PendingFile {
    /// What this entry costs the connection's output limit, besides `before`.
    static let overhead = 128

    /// The output queued before the request (moved out of the connection's queue).
    @exclusivity(unchecked) var before: OutputBuffer
    @exclusivity(unchecked) var beforeSent: Int
    let path: String
    let messageCount: Int
    @exclusivity(unchecked) var isOpened = false
    @exclusivity(unchecked) var fd: Int32 = -1
    @exclusivity(unchecked) var size = 0
    @exclusivity(unchecked) var sent = 0
    /// Set while waiting for the disk (the part to send next is not in the page cache).
    @exclusivity(unchecked) var retryTimer: LoopTimer?

    init(path: String, messageCount: Int, before: consuming OutputBuffer, beforeSent: Int) {
        self.path = path
        self.messageCount = messageCount
        self.before = before
        self.beforeSent = beforeSent
    }

    var cost: Int { Self.overhead + path.utf8.count }
}

extension Worker {
    /// Queues the file behind the connection's output; its bytes are read and sent as
    /// the socket drains, and whatever the connection sends later follows them.
    func sendFile(_ path: String, to connection: Connection, messageCount: Int) {
        // Through `send`, for its checks (closing, over the output limit) and the flush
        // it queues.
        var accepted = false
        connection.send { _ in accepted = true }
        guard accepted else { return }
        var before = OutputBuffer()
        swap(&before, &connection.output)
        let file = PendingFile(path: path, messageCount: messageCount, before: before, beforeSent: connection.outputSent)
        connection.outputSent = 0
        connection.files.append(file)
        connection.fileQueueBytes += file.cost + file.before.count - file.beforeSent
    }
}

extension Connection {
    /// Sends the pending files, and what was queued before each, as far as the socket
    /// takes them. True when none is left (then `output` is next); false when the
    /// connection waits for the socket, was dropped, or has used its turn.
    func flushFiles() -> Bool {
        var chunks = 0
        while let file = files.first {
            while file.beforeSent < file.before.count {
                let result = file.before.withBytes(from: file.beforeSent) { transport.write($0) }
                guard case .bytes(let n) = result else { return waitOrDrop(result) }
                file.beforeSent += n
                fileQueueBytes -= n
            }
            if !file.isOpened {
                file.isOpened = true
                worker.outputBuffers.give(&file.before)
                file.beforeSent = 0
                if let (fd, size) = worker.publicDirectory.open(file.path) {
                    file.fd = fd
                    file.size = size
                } else {
                    var reply: [UInt8] = []
                    ReplyWriter.actionReply(fields: JSONObject(), error: "Error: That file is not found (\(file.path))",
                                            messageCount: file.messageCount, to: &reply)
                    file.before.append(reply)
                    fileQueueBytes += file.before.count
                    continue
                }
            }
            let chunk = worker.publicDirectory.chunk
            while file.sent < file.size {
                if chunks == PublicDirectory.chunksPerTurn {
                    // Other connections first; the socket is still writable, so epoll
                    // reports it again at once.
                    watchWritable(true)
                    return false
                }
                chunks += 1
                let count = min(chunk.count, file.size - file.sent)
                var n: Int
                repeat {
                    n = herald_pread_cached(file.fd, chunk.baseAddress, count, off_t(file.sent), PublicDirectory.readAheadBytes)
                } while n < 0 && errno == EINTR
                if n < 0 && errno == EAGAIN {
                    // Not in the page cache: the kernel reads it ahead meanwhile; the loop
                    // does not wait for the disk.
                    retryAfterDisk(file)
                    return false
                }
                guard n > 0 else {
                    // Shrunk or unreadable mid-way: the client cannot tell where the file ends.
                    worker.drop(self, reason: "file \(file.path) could not be read to its end (\(n < 0 ? String(cString: strerror(errno)) : "it shrank"))")
                    return false
                }
                var written = 0
                while written < n {
                    let result = transport.write(UnsafeRawBufferPointer(rebasing: chunk[written..<n]))
                    guard case .bytes(let m) = result else {
                        file.sent += written
                        return waitOrDrop(result)
                    }
                    written += m
                }
                file.sent += n
            }
            closeFile(file)
            files.removeFirst()
        }
        return true
    }

    /// Tries the file again shortly, once the kernel's read-ahead has had time.
    private func retryAfterDisk(_ file: PendingFile) {
        guard file.retryTimer?.isPending != true else { return }
        watchWritable(transport.needsWritableToRead)  // the timer flushes, not epoll
        file.retryTimer = EventLoop.current.schedule(afterMilliseconds: 2) { [weak self] in
            guard let self, self.state != .closed else { return }
            self.flush()
        }
    }

    /// After a write that did not go through: wait for the socket, or drop the connection.
    private func waitOrDrop(_ result: IOResult) -> Bool {
        switch result {
        case .wouldBlock:
            watchWritable(!transport.writeWaitsForReadable || transport.needsWritableToRead)
        case .closed, .failed:
            worker.drop(self, reason: transport.failureReason ?? "write failed")
        case .bytes:
            break
        }
        return false
    }

    private func closeFile(_ file: PendingFile) {
        file.retryTimer?.cancel()
        if file.fd >= 0 {
            close(file.fd)
            file.fd = -1
        }
        fileQueueBytes -= file.cost + file.before.count - file.beforeSent
        worker.outputBuffers.give(&file.before)
    }

    /// Closes the pending files (the connection is released).
    func closeFiles() {
        for file in files { closeFile(file) }
        files.removeAll()
    }
}
