/// A JSON value as it appears on the wire.
///
/// Numbers are `Double`s, as in JavaScript. Objects keep their keys in order
/// (see `JSONObject`), because reply key order is part of the protocol.
public enum JSON: Sendable, Equatable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSON])
    case object(JSONObject)
}

extension JSON {
    /// The string for `.string`, else nil.
    @inlinable
    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    /// The object for `.object`, else nil.
    @inlinable
    public var objectValue: JSONObject? {
        if case .object(let o) = self { return o }
        return nil
    }

    /// The elements for `.array`, else nil.
    @inlinable
    public var arrayValue: [JSON]? {
        if case .array(let a) = self { return a }
        return nil
    }

    /// The flag for `.bool`, else nil.
    @inlinable
    public var boolValue: Bool? {
        if case .bool(let b) = self { return b }
        return nil
    }

    /// The number for `.number`; for `.string`, the value JavaScript's `Number(s)`
    /// gives for a plain decimal string (optional surrounding ASCII whitespace,
    /// optional sign, digits with an optional fraction, optional exponent).
    /// Any other string, the empty string included, and any other case give nil.
    public var numberValue: Double? {
        switch self {
        case .number(let d):
            return d
        case .string(let s):
            return JSONNumberFormat.parseDecimalString(s)
        default:
            return nil
        }
    }

    /// True for `.null`.
    @inlinable
    public var isNull: Bool {
        if case .null = self { return true }
        return false
    }
}

extension JSON: ExpressibleByNilLiteral {
    @inlinable
    public init(nilLiteral: ()) { self = .null }
}

extension JSON: ExpressibleByBooleanLiteral {
    @inlinable
    public init(booleanLiteral value: Bool) { self = .bool(value) }
}

extension JSON: ExpressibleByIntegerLiteral {
    @inlinable
    public init(integerLiteral value: Int) { self = .number(Double(value)) }
}

extension JSON: ExpressibleByFloatLiteral {
    @inlinable
    public init(floatLiteral value: Double) { self = .number(value) }
}

extension JSON: ExpressibleByStringLiteral {
    @inlinable
    public init(stringLiteral value: String) { self = .string(value) }
}

extension JSON: ExpressibleByArrayLiteral {
    @inlinable
    public init(arrayLiteral elements: JSON...) { self = .array(elements) }
}

extension JSON: ExpressibleByDictionaryLiteral {
    /// Keeps the written order; a repeated key replaces the earlier value in place.
    public init(dictionaryLiteral elements: (String, JSON)...) {
        self = .object(JSONObject(elements))
    }
}

extension JSON: CustomStringConvertible {
    /// The compact JSON text, as `JSONWriter` writes it.
    public var description: String {
        var out: [UInt8] = []
        JSONWriter.write(self, to: &out)
        return String(decoding: out, as: UTF8.self)
    }
}
