import HeraldLoop
import HeraldProtocol

/// A cached value with its timestamps (milliseconds since the epoch).
public struct CacheEntry: Sendable, Equatable {
    public var value: JSON
    public var expireTimestamp: Int?
    public var createdAt: Int
    public var readAt: Int?

    public init(value: JSON, expireTimestamp: Int?, createdAt: Int, readAt: Int?) {
        self.value = value
        self.expireTimestamp = expireTimestamp
        self.createdAt = createdAt
        self.readAt = readAt
    }
}

/// The cache actions share. In a cluster it is Redis, so every worker and host sees the
/// same entries; a single worker may use `MemoryCache`.
@LoopActor
public protocol Cache: AnyObject {
    /// Stores `value`; it disappears `expireInMilliseconds` later (nil: never).
    func save(_ key: String, _ value: JSON, expireInMilliseconds: Int?) async throws -> Bool
    /// The entry, with `readAt` set to now; nil when absent or expired.
    func load(_ key: String) async throws -> CacheEntry?
    /// Removes the entry; false when there was none.
    func destroy(_ key: String) async throws -> Bool
    /// The number of live entries.
    func size() async throws -> Int
}

/// An in-process cache for one worker. Expired entries are dropped when touched and by
/// a sweep once a second while the cache is not empty.
@LoopActor
public final class MemoryCache: Cache {
    @exclusivity(unchecked) private var entries: [String: CacheEntry] = [:]
    @exclusivity(unchecked) private var sweep: LoopTimer?

    public init() {}

    public func save(_ key: String, _ value: JSON, expireInMilliseconds: Int?) async throws -> Bool {
        let now = Clock.wallMillis()
        entries[key] = CacheEntry(value: value, expireTimestamp: expireInMilliseconds.map { now + $0 },
                                  createdAt: now, readAt: nil)
        scheduleSweep()
        return true
    }

    public func load(_ key: String) async throws -> CacheEntry? {
        let now = Clock.wallMillis()
        guard var entry = entries[key] else { return nil }
        if let expiry = entry.expireTimestamp, expiry <= now {
            entries[key] = nil
            return nil
        }
        entry.readAt = now
        entries[key] = entry
        return entry
    }

    public func destroy(_ key: String) async throws -> Bool {
        entries.removeValue(forKey: key) != nil
    }

    public func size() async throws -> Int {
        removeExpired()
        return entries.count
    }

    private func removeExpired() {
        let now = Clock.wallMillis()
        entries = entries.filter { $0.value.expireTimestamp.map { $0 > now } ?? true }
    }

    private func scheduleSweep() {
        guard sweep?.isPending != true else { return }
        sweep = EventLoop.current.schedule(afterMilliseconds: 1_000) { [weak self] in
            guard let self else { return }
            self.removeExpired()
            if !self.entries.isEmpty { self.scheduleSweep() }
        }
    }
}
