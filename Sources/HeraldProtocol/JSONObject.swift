/// A JSON object that keeps its keys in order, each key at most once.
///
/// Lookups scan the keys linearly: protocol objects (replies, params) are small,
/// and a scan over a few keys beats hashing. Equality is order-sensitive.
public struct JSONObject: Sendable, Equatable, Sequence {
    public typealias Element = (key: String, value: JSON)

    @usableFromInline
    internal var pairs: [Element]

    /// An empty object.
    @inlinable
    public init() { pairs = [] }

    /// An object with `pairs` in order; a later duplicate replaces the earlier value
    /// in place (the first key's position is kept).
    public init(_ pairs: [(String, JSON)]) {
        self.pairs = []
        self.pairs.reserveCapacity(pairs.count)
        for (key, value) in pairs { self[key] = value }
    }

    /// The value for `key`. Setting replaces in place when the key is present and
    /// appends otherwise; setting nil removes the key and keeps the others' order.
    public subscript(key: String) -> JSON? {
        get {
            guard let i = index(forKey: key) else { return nil }
            return pairs[i].value
        }
        set {
            if let i = index(forKey: key) {
                if let newValue {
                    pairs[i].value = newValue
                } else {
                    pairs.remove(at: i)
                }
            } else if let newValue {
                pairs.append((key: key, value: newValue))
            }
        }
    }

    /// The position of `key` in iteration order, or nil.
    @inlinable
    public func index(forKey key: String) -> Int? {
        for i in pairs.indices where pairs[i].key == key { return i }
        return nil
    }

    @inlinable
    public var count: Int { pairs.count }

    @inlinable
    public var isEmpty: Bool { pairs.isEmpty }

    /// The keys in order.
    public var keys: [String] { pairs.map(\.key) }

    /// The values in key order.
    public var values: [JSON] { pairs.map(\.value) }

    /// Appends without looking for the key: the caller guarantees it is new.
    @inlinable
    public mutating func append(_ key: String, _ value: JSON) {
        pairs.append((key: key, value: value))
    }

    /// Removes `key` (the others keep their order) and returns its value.
    @discardableResult
    public mutating func removeValue(forKey key: String) -> JSON? {
        guard let i = index(forKey: key) else { return nil }
        return pairs.remove(at: i).value
    }

    public mutating func removeAll() {
        pairs.removeAll()
    }

    /// Reserves room for `n` keys.
    public mutating func reserveCapacity(_ n: Int) {
        pairs.reserveCapacity(n)
    }

    @inlinable
    public func makeIterator() -> IndexingIterator<[Element]> {
        pairs.makeIterator()
    }

    @inlinable
    public var underestimatedCount: Int { pairs.count }

    public static func == (lhs: JSONObject, rhs: JSONObject) -> Bool {
        guard lhs.pairs.count == rhs.pairs.count else { return false }
        for i in lhs.pairs.indices {
            if lhs.pairs[i].key != rhs.pairs[i].key || lhs.pairs[i].value != rhs.pairs[i].value {
                return false
            }
        }
        return true
    }
}

extension JSONObject: ExpressibleByDictionaryLiteral {
    /// Keeps the written order; a repeated key replaces the earlier value in place.
    public init(dictionaryLiteral elements: (String, JSON)...) {
        self.init(elements)
    }
}

extension JSONObject: CustomStringConvertible {
    /// The compact JSON text, as `JSONWriter` writes it.
    public var description: String {
        var out: [UInt8] = []
        JSONWriter.writeObject(self, to: &out)
        return String(decoding: out, as: UTF8.self)
    }
}
