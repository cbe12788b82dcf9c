import Glibc

/// A value behind a pthread mutex. (Not `Synchronization.Mutex`: on Linux it is a raw
/// futex that ThreadSanitizer cannot see, so every access under it is reported as a
/// race; a pthread mutex is understood by TSan.) `@unchecked Sendable` is true: the
/// value is only reached through `withLock`.
package final class Locked<Value>: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private var value: Value

    package init(_ value: Value) {
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
        self.value = value
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deinitialize(count: 1)
        mutex.deallocate()
    }

    package func withLock<R>(_ body: (inout Value) -> R) -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return body(&value)
    }
}
