/// A JSON object that keeps its keys in order, each key at most once.
///
/// Lookups scan the keys linearly: protocol objects (replies, params) are small,
/// and a scan over a few keys beats hashing. Equality is order-sensitive.
public struct JSONObject: Sendable, Equatable, Sequence {
    public typealias Element = (key: String, value: JSON)

    /// One key and its value. A struct rather than the `Element` tuple, so that
    /// copying and destroying storage uses compiled code, not tuple metadata.
    @usableFromInline
    internal struct Entry: Sendable {
        @usableFromInline var key: String
        @usableFromInline var value: JSON

        @inlinable
        init(key: String, value: JSON) {
            self.key = key
            self.value = value
        }
    }

    @usableFromInline
    internal var entries: [Entry]

    /// An empty object.
    @inlinable
    public init() { entries = [] }

    /// An object with `pairs` in order; a later duplicate replaces the earlier value
    /// in place (the first key's position is kept).
    public init(_ pairs: [(String, JSON)]) {
        entries = []
        entries.reserveCapacity(pairs.count)
        for (key, value) in pairs { self[key] = value }
    }

    /// The value for `key`. Setting replaces in place when the key is present and
    /// appends otherwise; setting nil removes the key and keeps the others' order.
    public subscript(key: String) -> JSON? {
        get {
            guard let i = index(forKey: key) else { return nil }
            return entries[i].value
        }
        set {
            if let i = index(forKey: key) {
                if let newValue {
                    entries[i].value = newValue
                } else {
                    entries.remove(at: i)
                }
            } else if let newValue {
                entries.append(Entry(key: key, value: newValue))
            }
        }
    }

    /// The position of `key` in iteration order, or nil.
    @inlinable
    public func index(forKey key: String) -> Int? {
        for i in entries.indices where entries[i].key == key { return i }
        return nil
    }

    /// Whether `key` holds exactly the string `text` (no copy of the value).
    @inlinable @inline(__always)
    public func hasString(_ text: String, forKey key: String) -> Bool {
        for i in entries.indices where entries[i].key == key {
            if case .string(let value) = entries[i].value { return value == text }
            return false
        }
        return false
    }

    @inlinable
    public var count: Int { entries.count }

    @inlinable
    public var isEmpty: Bool { entries.isEmpty }

    /// The keys in order.
    public var keys: [String] { entries.map(\.key) }

    /// The values in key order.
    public var values: [JSON] { entries.map(\.value) }

    /// Appends without looking for the key: the caller guarantees it is new.
    @inlinable
    public mutating func append(_ key: String, _ value: JSON) {
        entries.append(Entry(key: key, value: value))
    }

    /// Removes `key` (the others keep their order) and returns its value.
    @discardableResult
    public mutating func removeValue(forKey key: String) -> JSON? {
        guard let i = index(forKey: key) else { return nil }
        return entries.remove(at: i).value
    }

    public mutating func removeAll(keepingCapacity: Bool = false) {
        guard keepingCapacity else { return entries = [] }
        // removeLast keeps the storage without the generic range replacement that
        // removeAll(keepingCapacity:) goes through.
        while !entries.isEmpty { entries.removeLast() }
    }

    /// Reserves room for `n` keys.
    public mutating func reserveCapacity(_ n: Int) {
        entries.reserveCapacity(n)
    }

    /// Yields `(key:, value:)` pairs in order.
    public struct Iterator: IteratorProtocol {
        @usableFromInline var base: IndexingIterator<[Entry]>

        @inlinable
        init(_ base: IndexingIterator<[Entry]>) { self.base = base }

        @inlinable
        public mutating func next() -> Element? {
            guard let entry = base.next() else { return nil }
            return (key: entry.key, value: entry.value)
        }
    }

    @inlinable
    public func makeIterator() -> Iterator {
        Iterator(entries.makeIterator())
    }

    @inlinable
    public var underestimatedCount: Int { entries.count }

    public static func == (lhs: JSONObject, rhs: JSONObject) -> Bool {
        guard lhs.entries.count == rhs.entries.count else { return false }
        for i in lhs.entries.indices {
            if lhs.entries[i].key != rhs.entries[i].key || lhs.entries[i].value != rhs.entries[i].value {
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
