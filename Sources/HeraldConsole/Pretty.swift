import HeraldProtocol

/// Renders JSON for people: indented, optionally colored (ANSI). Scalars are encoded
/// by the shared `JSONWriter`, so what is shown is exactly what is on the wire.
enum Pretty {
    static let reset = "\u{1B}[0m"
    static let keyColor = "\u{1B}[36m"
    static let stringColor = "\u{1B}[32m"
    static let numberColor = "\u{1B}[33m"
    static let literalColor = "\u{1B}[35m"
    static let errorColor = "\u{1B}[31m"
    static let dimColor = "\u{1B}[2m"
    static let chatColor = "\u{1B}[1;34m"

    static func render(_ value: JSON, color: Bool) -> String {
        var out = ""
        write(value, indent: 0, color: color, to: &out)
        return out
    }

    /// The compact wire form.
    static func compact(_ object: JSONObject) -> String {
        var bytes: [UInt8] = []
        JSONWriter.writeObject(object, to: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func paint(_ text: String, _ code: String, _ color: Bool) -> String {
        color ? code + text + reset : text
    }

    private static func scalar(_ value: JSON) -> String {
        String(decoding: JSONWriter.bytes(value), as: UTF8.self)
    }

    private static func write(_ value: JSON, indent: Int, color: Bool, to out: inout String) {
        let pad = String(repeating: "  ", count: indent + 1)
        let closePad = String(repeating: "  ", count: indent)
        switch value {
        case .object(let object):
            if object.isEmpty { out += "{}"; return }
            out += "{\n"
            var first = true
            for (key, element) in object {
                if !first { out += ",\n" }
                first = false
                out += pad + paint(scalar(.string(key)), keyColor, color) + ": "
                if key == "error" {
                    out += paint(scalar(element), errorColor, color)
                } else {
                    write(element, indent: indent + 1, color: color, to: &out)
                }
            }
            out += "\n" + closePad + "}"
        case .array(let elements):
            if elements.isEmpty { out += "[]"; return }
            out += "[\n"
            for (i, element) in elements.enumerated() {
                if i > 0 { out += ",\n" }
                out += pad
                write(element, indent: indent + 1, color: color, to: &out)
            }
            out += "\n" + closePad + "]"
        case .string:
            out += paint(scalar(value), stringColor, color)
        case .number:
            out += paint(scalar(value), numberColor, color)
        case .bool, .null:
            out += paint(scalar(value), literalColor, color)
        }
    }
}
