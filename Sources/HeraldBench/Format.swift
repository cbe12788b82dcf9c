import HeraldProtocol
/// Number and JSON formatting for the result lines, without Foundation.
enum Format {
    /// `value` with exactly `decimals` digits after the point.
    static func fixed(_ value: Double, _ decimals: Int) -> String {
        guard value.isFinite else { return "0" }
        var scale = 1.0
        for _ in 0..<decimals { scale *= 10 }
        let scaled = (abs(value) * scale).rounded()
        let whole = UInt64(scaled / scale)
        var text = (value < 0 && scaled > 0 ? "-" : "") + String(whole)
        if decimals > 0 {
            let fraction = UInt64(scaled - Double(whole) * scale)
            let digits = String(fraction)
            text += "." + String(repeating: "0", count: decimals - digits.count) + digits
        }
        return text
    }

    /// A latency in nanoseconds as milliseconds with about two significant digits.
    static func millis(_ nanos: UInt64) -> String {
        let ms = Double(nanos) / 1_000_000
        if ms < 10 { return fixed(ms, 2) }
        if ms < 100 { return fixed(ms, 1) }
        return fixed(ms, 0)
    }

    /// A JSON string literal (the protocol module's encoder).
    static func jsonString(_ s: String) -> String {
        var bytes: [UInt8] = []
        JSONWriter.writeString(s, to: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// One result, printed either as `key=value` words or as a JSON object with the same keys.
struct Report {
    enum Value {
        case text(String)       // quoted in JSON
        case number(String)     // already formatted; bare in JSON
    }
    var fields: [(String, Value)] = []
    let mode: String

    init(mode: String) { self.mode = mode }

    mutating func add(_ key: String, _ text: String) { fields.append((key, .text(text))) }
    mutating func add(_ key: String, number: String) { fields.append((key, .number(number))) }
    mutating func add(_ key: String, _ n: Int) { fields.append((key, .number(String(n)))) }
    mutating func add(_ key: String, _ n: UInt64) { fields.append((key, .number(String(n)))) }

    /// A key with a unit (e.g. `ms`, `s`, `KiB`) shows it after the value in the text
    /// form (`p50=0.41ms`) and in the key in JSON (`"p50_ms":0.41`).
    func render(json: Bool, units: [String: String] = [:]) -> String {
        if json {
            let body = fields.map { key, value -> String in
                let name = units[key].map { key + "_" + $0.lowercased() } ?? key
                switch value {
                case .text(let s): return Format.jsonString(name) + ":" + Format.jsonString(s)
                case .number(let n): return Format.jsonString(name) + ":" + n
                }
            }
            return "{" + ([Format.jsonString("mode") + ":" + Format.jsonString(mode)] + body).joined(separator: ",") + "}"
        }
        let words = fields.map { key, value -> String in
            switch value {
            case .text(let s): return key + "=" + s
            case .number(let n): return key + "=" + n + (units[key] ?? "")
            }
        }
        return ([mode] + words).joined(separator: " ")
    }
}
