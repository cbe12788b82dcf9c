/// A fixed log-linear latency histogram over nanoseconds (HdrHistogram-like, 64
/// sub-buckets per power of two, so a recorded value is off by at most 1/64). Recording
/// is a few integer operations into a preallocated array: no allocation per value.
struct Histogram {
    private static let linear = 128            // values below this are exact
    private static let subBuckets = 64          // per power of two above it
    private static let bucketCount = linear + 58 * subBuckets

    private var counts: [UInt64]
    private(set) var total: UInt64 = 0
    private(set) var maxValue: UInt64 = 0

    init() { counts = [UInt64](repeating: 0, count: Histogram.bucketCount) }

    static func index(_ value: UInt64) -> Int {
        if value < UInt64(linear) { return Int(value) }
        let msb = 63 - value.leadingZeroBitCount           // >= 7
        let shift = msb - 6                                  // value >> shift is in [64, 128)
        let i = linear + (shift - 1) * subBuckets + Int(value >> UInt64(shift)) - subBuckets
        return min(i, bucketCount - 1)
    }

    /// The middle of the values that land in bucket `i`.
    static func value(at i: Int) -> UInt64 {
        if i < linear { return UInt64(i) }
        let shift = (i - linear) / subBuckets + 1
        let mantissa = UInt64((i - linear) % subBuckets + subBuckets)
        let low = mantissa << UInt64(shift)
        return low + (UInt64(1) << UInt64(shift)) / 2
    }

    mutating func record(_ value: UInt64) {
        counts[Histogram.index(value)] &+= 1
        total &+= 1
        if value > maxValue { maxValue = value }
    }

    mutating func merge(_ other: Histogram) {
        for i in 0..<counts.count { counts[i] &+= other.counts[i] }
        total &+= other.total
        maxValue = max(maxValue, other.maxValue)
    }

    /// The value below which `fraction` (0...1) of the recorded values fall; 0 when empty.
    func percentile(_ fraction: Double) -> UInt64 {
        if total == 0 { return 0 }
        let rank = max(UInt64(1), UInt64((Double(total) * fraction).rounded(.up)))
        var seen: UInt64 = 0
        for i in 0..<counts.count {
            seen &+= counts[i]
            if seen >= rank { return min(Histogram.value(at: i), maxValue) }
        }
        return maxValue
    }
}
