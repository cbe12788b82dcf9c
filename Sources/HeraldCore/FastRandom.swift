/// xoshiro256** seeded once from the system's generator: random numbers and
/// connection ids without a system call each.
public struct FastRandom: RandomNumberGenerator, Sendable {
    private var s0, s1, s2, s3: UInt64

    public init() {
        var system = SystemRandomNumberGenerator()
        repeat {
            s0 = system.next(); s1 = system.next(); s2 = system.next(); s3 = system.next()
        } while s0 | s1 | s2 | s3 == 0
    }

    @inline(__always)
    public mutating func next() -> UInt64 {
        let result = rotl(s1 &* 5, 7) &* 9
        let t = s1 << 17
        s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3
        s2 ^= t
        s3 = rotl(s3, 45)
        return result
    }

    @inline(__always)
    private func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }
}

/// A random (version 4) UUID, written in canonical lowercase form.
public struct ConnectionID: Hashable, Sendable {
    public let high: UInt64
    public let low: UInt64

    public init(using random: inout FastRandom) {
        high = (random.next() & ~0xF000) | 0x4000                       // version 4
        low = (random.next() & 0x3FFF_FFFF_FFFF_FFFF) | 0x8000_0000_0000_0000  // variant 10
    }

    public var string: String {
        let hex: [UInt8] = Array("0123456789abcdef".utf8)
        return String(unsafeUninitializedCapacity: 36) { buffer in
            var index = 0
            func put(_ value: UInt64, _ nibbles: Int) {
                for shift in stride(from: (nibbles - 1) * 4, through: 0, by: -4) {
                    buffer[index] = hex[Int((value >> UInt64(shift)) & 0xF)]
                    index += 1
                }
            }
            func dash() { buffer[index] = UInt8(ascii: "-"); index += 1 }
            put(high >> 32, 8); dash()
            put((high >> 16) & 0xFFFF, 4); dash()
            put(high & 0xFFFF, 4); dash()
            put(low >> 48, 4); dash()
            put(low & 0xFFFF_FFFF_FFFF, 12)
            return 36
        }
    }
}
