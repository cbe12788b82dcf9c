import HeraldBench
import HeraldRedis

/// Redis replies (RESP2) as Herald reads them: hiredis's reader with Herald's Swift copy of
/// its reply objects (`RedisReply.decode`, the path of every worker's Redis reply), and the
/// bench tool's own Swift RESP reader (`RESPReader`).
///
/// Properties: decoding never traps; replies that hiredis accepted, written back as RESP,
/// decode to the same replies; `RESPReader` reports a length and elements inside its input.
///
/// hiredis 0.14 allocates an array reply's element table as soon as it reads the header
/// (8 bytes per announced element) and walks all of it when freed, so `*100000000` costs
/// 800 MB and a tenth of a second: inputs announcing arrays over 65,536 elements skip the
/// hiredis half (a Redis server is trusted not to send those).
enum RESPTarget {
    static let maxHiredisArray = 65_536

    static func run(_ input: UnsafeRawBufferPointer) {
        let bytes = Array(input)
        if !announcesHugeArray(input), let replies = try? RedisReply.decode(resp: bytes) {
            var encoded: [UInt8] = []
            for reply in replies { encode(reply, to: &encoded) }
            guard let again = try? RedisReply.decode(resp: encoded) else { fail("resp: re-encoded replies do not decode") }
            if again != replies { fail("resp: replies changed on a round trip") }
        }
        benchReader(input)
    }

    /// Whether some `*` is followed by a number over `maxHiredisArray`.
    static func announcesHugeArray(_ input: UnsafeRawBufferPointer) -> Bool {
        var i = 0
        while i < input.count {
            if input[i] == UInt8(ascii: "*") {
                var value = 0
                var j = i + 1
                while j < input.count, input[j] >= 0x30, input[j] <= 0x39 {
                    value = value * 10 + Int(input[j] - 0x30)
                    if value > maxHiredisArray { return true }
                    j += 1
                }
            }
            i += 1
        }
        return false
    }

    static func benchReader(_ input: UnsafeRawBufferPointer) {
        let reader = RESPReader()
        var rest = input.bindMemory(to: UInt8.self)
        while !rest.isEmpty {
            let length: Int?
            do { length = try reader.read(rest) } catch { return }
            guard let length else { return }
            if length <= 0 || length > rest.count { fail("resp: RESPReader length \(length) for \(rest.count) bytes") }
            for i in 0..<RESPReader.maxElements {
                let element = reader.element(i)
                if element.count > 0, let base = element.baseAddress,
                   base < rest.baseAddress! || base + element.count > rest.baseAddress! + length {
                    fail("resp: RESPReader element \(i) outside its value")
                }
            }
            rest = UnsafeBufferPointer(rebasing: rest[length...])
        }
    }

    static func encode(_ reply: RedisReply, to out: inout [UInt8]) {
        func header(_ type: Character, _ text: String) {
            out.append(contentsOf: String(type).utf8)
            out.append(contentsOf: text.utf8)
            out.append(contentsOf: [0x0D, 0x0A])
        }
        switch reply {
        case .string(let bytes):
            header("$", String(bytes.count))
            out.append(contentsOf: bytes)
            out.append(contentsOf: [0x0D, 0x0A])
        case .status(let text): header("+", text)
        case .error(let text): header("-", text)
        case .integer(let n): header(":", String(n))
        case .null: header("$", "-1")
        case .array(let items):
            header("*", String(items.count))
            for item in items { encode(item, to: &out) }
        }
    }
}
