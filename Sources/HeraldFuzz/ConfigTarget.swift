import Glibc
import HeraldCore
import HeraldProtocol

/// The configuration loader: a config file's JSON text, `--set KEY=VALUE` settings and
/// `HERALD_*` environment variables, through the public API `herald start` uses.
///
/// Byte 0 picks the layer (bits 0-1: 0 and 3 a config file, 1 `--set` lines, 2 environment
/// lines of `KEY=VALUE`) and the way in: one input in eight (bits 2-4 all set) goes through
/// `ConfigurationLoader.load()` with a real file; the others take the same steps directly
/// (JSON parse, `Configuration.set` per key), which is forty times faster because `load()`
/// spells out every key's environment variable name. Properties: nothing traps; a loaded
/// configuration written out as a config file (`asJSON`) loads back to the same one.
enum ConfigTarget {
    nonisolated(unsafe) static var path = ""

    static func setUp() {
        // Under $TMPDIR (deploy/fuzz.sh: .build-fuzz/tmp), where a crash may leave it behind.
        let tmp = getenv("TMPDIR").map { String(cString: $0) } ?? "/tmp"
        var template = Array((tmp + "/herald-fuzz-config-XXXXXX").utf8CString)
        guard let dir = mkdtemp(&template) else { fail("config: mkdtemp failed") }
        path = String(cString: dir) + "/fuzz.json"
        atexit { _ = unlink(ConfigTarget.path); _ = rmdir(String(ConfigTarget.path.dropLast(10))) }
    }

    static func run(_ input: UnsafeRawBufferPointer) {
        guard let first = input.first else { return }
        let rest = UnsafeRawBufferPointer(rebasing: input[1...])
        let layer = first & 3
        let viaLoader = first & 0x1C == 0x1C
        var settings: [(key: String, value: String)] = []
        if layer == 1 || layer == 2 {
            for line in rest.split(separator: 0x0A, omittingEmptySubsequences: true) {
                // As `herald start --set` splits it.
                let text = String(decoding: line, as: UTF8.self)
                guard let equals = text.firstIndex(of: "="), equals != text.startIndex else { continue }
                settings.append((String(text[..<equals]), String(text[text.index(after: equals)...])))
            }
        }
        let configuration: Configuration
        if viaLoader {
            var loader = ConfigurationLoader()
            switch layer {
            case 1: loader.overrides = settings.map { ($0.key, ConfigurationLoader.value(fromText: $0.value)) }
            case 2: for (key, value) in settings { loader.environment[Configuration.environmentName(for: key)] = value }
            default:
                writeFile(rest)
                loader.configFile = path
            }
            guard let loaded = try? loader.load() else { return }
            configuration = loaded
        } else {
            var direct = Configuration()
            do {
                if layer == 1 || layer == 2 {
                    for (key, value) in settings { try direct.set(key, ConfigurationLoader.value(fromText: value), source: "fuzz") }
                } else {
                    // What ConfigurationLoader does with a file's bytes.
                    guard case .object(let object)? = try? JSONParser.parse(rest) else { return }
                    for (key, value) in object where !key.hasPrefix("_") { try direct.set(key, value, source: "fuzz") }
                }
            } catch {
                return
            }
            configuration = direct
        }
        let written = JSONWriter.bytes(.object(configuration.asJSON))
        var reloaded = Configuration()
        if viaLoader {
            writeFile(written)
            do { reloaded = try ConfigurationLoader(configFile: path).load() } catch {
                fail("config: a loaded configuration, written out, does not load: \(error)")
            }
        } else {
            guard case .object(let object)? = try? JSONParser.parse(written) else { fail("config: asJSON does not parse") }
            for (key, value) in object {
                do { try reloaded.set(key, value, source: "fuzz") } catch { fail("config: asJSON's \(key) does not load: \(error)") }
            }
        }
        if reloaded != configuration { fail("config: a configuration changed when written out and loaded again") }
    }

    static func writeFile(_ bytes: [UInt8]) { bytes.withUnsafeBytes { writeFile($0) } }

    static func writeFile(_ bytes: UnsafeRawBufferPointer) {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { fail("config: cannot write \(path)") }
        var done = 0
        while done < bytes.count {
            let n = write(fd, bytes.baseAddress! + done, bytes.count - done)
            guard n > 0 else { fail("config: cannot write \(path)") }
            done += n
        }
        close(fd)
    }
}
