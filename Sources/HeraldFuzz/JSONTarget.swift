import HeraldProtocol

/// The JSON parser on arbitrary bytes; what it accepts must round-trip through JSONWriter.
///
/// Byte 0 picks the depth limit (1...64); the rest is the JSON text. Properties: a refusal
/// names an offset inside the input; an accepted value writes as JSON that parses back
/// within the same depth limit, to the same value (numbers out of Double's range are
/// ±infinity, which JSON.stringify writes as null: those compare after that mapping), and
/// writing that again gives the same bytes.
enum JSONTarget {
    static func run(_ input: UnsafeRawBufferPointer) {
        guard let first = input.first else { return }
        let depth = Int(first & 0x3F) + 1
        let text = UnsafeRawBufferPointer(rebasing: input[1...])
        let value: JSON
        do {
            value = try JSONParser.parse(text, maxDepth: depth)
        } catch {
            if error.offset < 0 || error.offset > text.count { fail("json: error offset \(error.offset) outside 0...\(text.count)") }
            return
        }
        touchNumbers(value)
        let written = JSONWriter.bytes(value)
        let again: JSON
        do {
            again = try JSONParser.parse(written, maxDepth: depth)
        } catch {
            fail("json: JSONWriter's output does not parse: \(error) in \(String(decoding: written, as: UTF8.self))")
        }
        if again != finite(value) { fail("json: the value changed on a round trip: \(String(decoding: written, as: UTF8.self))") }
        if JSONWriter.bytes(again) != written { fail("json: writing is not stable: \(String(decoding: written, as: UTF8.self))") }
    }

    /// `value` as JSON.stringify would leave it: non-finite numbers become null.
    static func finite(_ value: JSON) -> JSON {
        switch value {
        case .number(let d) where !d.isFinite: return .null
        case .array(let items): return .array(items.map(finite))
        case .object(let object): return .object(JSONObject(object.map { ($0.key, finite($0.value)) }))
        default: return value
        }
    }

    /// Runs the numeric-string reader (`numberValue`) on every string, as actions do.
    static func touchNumbers(_ value: JSON) {
        switch value {
        case .string(let s):
            if let d = JSON.string(s).numberValue, d.isNaN { fail("json: numberValue of '\(s)' is NaN") }
        case .array(let items): for item in items { touchNumbers(item) }
        case .object(let object): for (key, item) in object { _ = JSON.string(key).numberValue; touchNumbers(item) }
        default: break
        }
    }
}
