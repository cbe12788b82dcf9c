import Glibc
import HeraldClient
import HeraldProtocol

/// The terminal in raw mode, and the line being edited. Everything printed while the
/// user types goes through `printAbove`, which redraws the prompt and the line after it.
final class Screen: Sendable {
    struct Editor {
        var prompt = "herald> "
        var line: [Character] = []
        var cursor = 0
        var history: [String] = []
        /// The history entry shown (history.count: the line being typed).
        var historyIndex = 0
        var draft: [Character] = []
        var pendingUTF8: [UInt8] = []
        var escape: [UInt8] = []
    }

    enum Key {
        case submit(String)
        case endOfInput
        case none
    }

    private let editor = Locked(Editor())
    private let saved: termios?

    init() {
        var original = termios()
        if tcgetattr(0, &original) == 0 {
            saved = original
            var raw = original
            raw.c_iflag &= ~tcflag_t(IXON | ICRNL | BRKINT | INPCK | ISTRIP)
            raw.c_lflag &= ~tcflag_t(ECHO | ICANON | ISIG | IEXTEN)
            withUnsafeMutableBytes(of: &raw.c_cc) { cc in
                cc[Int(VMIN)] = 1
                cc[Int(VTIME)] = 0
            }
            tcsetattr(0, TCSAFLUSH, &raw)
        } else {
            saved = nil
        }
    }

    /// Puts the terminal back as it was.
    func restore() {
        guard var saved else { return }
        tcsetattr(0, TCSAFLUSH, &saved)
    }

    /// Prints `text` (lines) above the prompt and redraws the line being edited.
    func printAbove(_ text: String) {
        editor.withLock { e in
            var out = "\r\u{1B}[K"
            out += text.split(separator: "\n", omittingEmptySubsequences: false).joined(separator: "\r\n")
            out += "\r\n"
            out += redraw(e)
            Output.emit(1, out)
        }
    }

    func showPrompt() {
        editor.withLock { e in Output.emit(1, redraw(e)) }
    }

    private func redraw(_ e: Editor) -> String {
        var out = "\r\u{1B}[K" + Pretty.dimColor + e.prompt + Pretty.reset + String(e.line)
        let back = e.line.count - e.cursor
        if back > 0 { out += "\u{1B}[\(back)D" }
        return out
    }

    /// Feeds one byte typed by the user.
    func feed(_ byte: UInt8) -> Key {
        editor.withLock { e -> Key in
            let key = handle(byte, &e)
            switch key {
            case .submit:
                Output.emit(1, "\r\n")
            case .endOfInput:
                Output.emit(1, "\r\n")
            case .none:
                Output.emit(1, redraw(e))
            }
            return key
        }
    }

    private func handle(_ byte: UInt8, _ e: inout Editor) -> Key {
        if !e.escape.isEmpty || byte == 0x1B {
            e.escape.append(byte)
            return escapeSequence(&e)
        }
        switch byte {
        case 0x0D, 0x0A:
            let text = String(e.line)
            e.line = []
            e.cursor = 0
            if !text.isEmpty, e.history.last != text { e.history.append(text) }
            e.historyIndex = e.history.count
            return .submit(text)
        case 0x7F, 0x08:
            if e.cursor > 0 {
                e.line.remove(at: e.cursor - 1)
                e.cursor -= 1
            }
        case 0x01: e.cursor = 0
        case 0x05: e.cursor = e.line.count
        case 0x02: e.cursor = max(0, e.cursor - 1)
        case 0x06: e.cursor = min(e.line.count, e.cursor + 1)
        case 0x0B: e.line.removeSubrange(e.cursor...)
        case 0x15:
            e.line.removeSubrange(..<e.cursor)
            e.cursor = 0
        case 0x17:
            var start = e.cursor
            while start > 0 && e.line[start - 1] == " " { start -= 1 }
            while start > 0 && e.line[start - 1] != " " { start -= 1 }
            e.line.removeSubrange(start..<e.cursor)
            e.cursor = start
        case 0x03:
            e.line = []
            e.cursor = 0
        case 0x04:
            if e.line.isEmpty { return .endOfInput }
            if e.cursor < e.line.count { e.line.remove(at: e.cursor) }
        case 0x0C:
            Output.emit(1, "\u{1B}[H\u{1B}[2J")
        default:
            guard byte >= 0x20 else { break }
            e.pendingUTF8.append(byte)
            let expected = byte < 0x80 ? 1 : (e.pendingUTF8[0] >= 0xF0 ? 4 : e.pendingUTF8[0] >= 0xE0 ? 3 : 2)
            guard e.pendingUTF8.count >= expected else { break }
            let text = String(decoding: e.pendingUTF8, as: UTF8.self)
            e.pendingUTF8 = []
            for character in text {
                e.line.insert(character, at: e.cursor)
                e.cursor += 1
            }
        }
        return .none
    }

    private func escapeSequence(_ e: inout Editor) -> Key {
        let s = e.escape
        if s.count < 2 { return .none }
        if s[1] != UInt8(ascii: "[") && s[1] != UInt8(ascii: "O") {
            e.escape = []
            return .none
        }
        if s.count < 3 { return .none }
        let last = s[s.count - 1]
        // Parameters (digits, ';') continue the sequence; a letter or '~' ends it.
        if (0x30...0x3F).contains(last) && s.count < 8 { return .none }
        e.escape = []
        switch last {
        case UInt8(ascii: "A"): historyMove(-1, &e)
        case UInt8(ascii: "B"): historyMove(1, &e)
        case UInt8(ascii: "C"): e.cursor = min(e.line.count, e.cursor + 1)
        case UInt8(ascii: "D"): e.cursor = max(0, e.cursor - 1)
        case UInt8(ascii: "H"): e.cursor = 0
        case UInt8(ascii: "F"): e.cursor = e.line.count
        case UInt8(ascii: "~"):
            switch s.count >= 4 ? s[2] : 0 {
            case UInt8(ascii: "3"): if e.cursor < e.line.count { e.line.remove(at: e.cursor) }
            case UInt8(ascii: "1"), UInt8(ascii: "7"): e.cursor = 0
            case UInt8(ascii: "4"), UInt8(ascii: "8"): e.cursor = e.line.count
            default: break
            }
        default: break
        }
        return .none
    }

    private func historyMove(_ step: Int, _ e: inout Editor) {
        let target = e.historyIndex + step
        guard target >= 0, target <= e.history.count else { return }
        if e.historyIndex == e.history.count { e.draft = e.line }
        e.historyIndex = target
        e.line = target == e.history.count ? e.draft : Array(e.history[target])
        e.cursor = e.line.count
    }
}

/// People: stdin and stdout are a terminal.
enum Interactive {
    static func run(_ settings: Console.Settings) async -> Int32 {
        let policy = ReconnectPolicy(initialDelay: .milliseconds(200), maxDelay: .seconds(5), maxAttempts: 20)
        guard let client = await connect(settings, reconnect: policy) else { return 1 }
        let screen = Screen()
        defer { screen.restore() }
        Output.emit(1, "\r" + Pretty.dimColor + "connected to \(settings.host):\(settings.port). `help` lists verbs and actions; Ctrl-D or `quit` ends." + Pretty.reset + "\r\n")
        screen.printAbove(Pretty.render(.object(client.welcome.raw), color: true))

        let (keys, keySink) = AsyncStream.makeStream(of: Screen.Key.self, bufferingPolicy: .unbounded)
        Thread.start {
            var byte: UInt8 = 0
            while true {
                let n = read(0, &byte, 1)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 {
                    keySink.yield(.endOfInput)
                    break
                }
                let key = screen.feed(byte)
                if case .none = key { continue }
                keySink.yield(key)
                if case .endOfInput = key { break }
            }
            keySink.finish()
        }
        let ended = Locked(false)
        let watcher = Task {
            for await event in client.events {
                switch event {
                case .say(let message):
                    let who = message.isFromServer ? "server" : String(message.from.prefix(8))
                    screen.printAbove(Pretty.chatColor + "[\(message.room)] \(who): " + Pretty.reset + message.message)
                case .goodbye(let reason):
                    screen.printAbove(Pretty.dimColor + "server said goodbye: \(reason)" + Pretty.reset)
                case .end(let reason, let willReconnect):
                    screen.printAbove(Pretty.dimColor + "connection ended (\(reason))" + (willReconnect ? "; reconnecting…" : "") + Pretty.reset)
                case .reconnected:
                    screen.printAbove(Pretty.dimColor + "reconnected; rooms and params restored" + Pretty.reset)
                case .timeout(let request, let count):
                    screen.printAbove(Pretty.errorColor + "no reply to \(request) (messageCount \(count)) in time" + Pretty.reset)
                case .error(let error):
                    screen.printAbove(Pretty.errorColor + "\(error)" + Pretty.reset)
                default:
                    break
                }
            }
            ended.withLock { $0 = true }
            keySink.yield(.endOfInput)
        }
        defer { watcher.cancel() }
        screen.showPrompt()
        for await key in keys {
            switch key {
            case .endOfInput:
                if !ended.withLock({ $0 }) { await client.disconnect() }
                return 0
            case .none:
                continue
            case .submit(let line):
                if line.isEmpty { screen.showPrompt(); continue }
                if isQuit(line) {
                    let reason = await client.disconnect()
                    screen.printAbove(Pretty.dimColor + "bye (\(reason ?? "no goodbye"))" + Pretty.reset)
                    return 0
                }
                if line == "help" {
                    screen.printAbove(await help(client))
                    continue
                }
                Task {
                    do {
                        let reply = try await client.send(line)
                        screen.printAbove(Pretty.render(.object(reply), color: true))
                    } catch {
                        screen.printAbove(Pretty.errorColor + "\(line): \(error)" + Pretty.reset)
                    }
                }
            }
        }
        return 0
    }

    static let verbs: [(String, String)] = [
        ("detailsView", "this connection: id, address, params, rooms, action counts"),
        ("paramAdd key=value", "set a sticky param (sent with every later plain action)"),
        ("paramView key", "one sticky param"),
        ("paramsView", "all sticky params"),
        ("paramDelete key", "forget one sticky param"),
        ("paramsDelete", "forget all sticky params"),
        ("roomAdd room", "join a room"),
        ("roomLeave room", "leave a room"),
        ("roomView [room]", "members of a room (default: the current room)"),
        ("say [room] message", "chat to the other members of a room"),
        ("documentation", "the server's actions"),
        ("quit", "say goodbye and leave (also Ctrl-D)"),
    ]

    static func help(_ client: HeraldClient) async -> String {
        var out = Pretty.keyColor + "Verbs" + Pretty.reset + "\n"
        for (verb, text) in verbs { out += "  " + verb.padding(22) + text + "\n" }
        out += Pretty.keyColor + "Actions" + Pretty.reset + " (type the name to run it with the sticky params, or a JSON line {\"action\":…,\"params\":{…}})\n"
        do {
            let documentation = try await client.documentation()
            for (name, versions) in documentation {
                guard let latest = versions.objectValue?.values.last?.objectValue else { continue }
                var line = "  " + name.padding(22) + (latest["description"]?.stringValue ?? "")
                let inputs = latest["inputs"]?.objectValue
                let required = inputs?["required"]?.arrayValue?.compactMap(\.stringValue) ?? []
                let optional = inputs?["optional"]?.arrayValue?.compactMap(\.stringValue) ?? []
                if !required.isEmpty { line += "\n" + "".padding(24) + "required: " + required.joined(separator: ", ") }
                if !optional.isEmpty { line += "\n" + "".padding(24) + "optional: " + optional.joined(separator: ", ") }
                out += line + "\n"
            }
        } catch {
            out += Pretty.errorColor + "  (documentation unavailable: \(error))" + Pretty.reset + "\n"
        }
        out += "Keys: ←/→ Home/End Ctrl-A/E move, ↑/↓ history, Backspace/Delete, Ctrl-U/K/W cut, Ctrl-C clears, Ctrl-D quits"
        return out
    }
}

extension String {
    func padding(_ width: Int) -> String {
        count >= width ? self + " " : self + String(repeating: " ", count: width - count)
    }
}
