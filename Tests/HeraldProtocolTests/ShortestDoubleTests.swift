import Foundation
import Testing
@testable import HeraldProtocol

/// `ShortestDouble` (Ryu) against the formatter it replaced (Swift's own shortest digits,
/// `writeShortestReference`), over millions of doubles of every kind. The count per
/// kind is `HERALD_SHORTEST_COUNT` (default 2,000,000).
@Suite struct ShortestDoubleTests {
    static var count: Int {
        ProcessInfo.processInfo.environment["HERALD_SHORTEST_COUNT"].flatMap { Int($0) } ?? 2_000_000
    }

    /// xorshift64*: reproducible, so a failure can be re-run.
    struct Generator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state ^= state >> 12
            state ^= state << 25
            state ^= state >> 27
            return state &* 0x2545_F491_4F6C_DD1D
        }
    }

    /// What `JSONNumberFormat.write` wrote before `ShortestDouble`.
    static func reference(_ d: Double) -> [UInt8] {
        var out: [UInt8] = []
        if !d.isFinite {
            out = Array("null".utf8)
        } else if d.magnitude < JSONNumberFormat.exactIntegerLimit && Double(Int64(d)) == d {
            JSONNumberFormat.writeInt64(Int64(d), to: &out)
        } else {
            JSONNumberFormat.writeShortestReference(d, to: &out)
        }
        return out
    }

    /// Both writers of the reply path: `JSONNumberFormat.write` and `ScratchWriter.number`.
    static func check(_ d: Double, _ mismatches: inout [String]) {
        let expected = reference(d)
        var actual: [UInt8] = []
        JSONNumberFormat.write(d, to: &actual)
        let scratch = withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 64) { buffer -> [UInt8] in
            var w = ScratchWriter(buffer)
            _ = w.number(d)
            return Array(w.bytes)
        }
        if (actual != expected || scratch != expected), mismatches.count < 20 {
            mismatches.append("\(d.bitPattern): \(String(decoding: actual, as: UTF8.self)) / \(String(decoding: scratch, as: UTF8.self)) != \(String(decoding: expected, as: UTF8.self))")
        }
    }

    static func run(seed: UInt64, _ make: (inout Generator) -> Double) {
        var g = Generator(state: seed)
        var mismatches: [String] = []
        for _ in 0..<count { check(make(&g), &mismatches) }
        #expect(mismatches.isEmpty, "\(mismatches)")
    }

    @Test func randomBitPatterns() {
        Self.run(seed: 0x9E37_79B9_7F4A_7C15) { Double(bitPattern: $0.next()) }
    }

    @Test func unitInterval() {
        // What `randomNumber` replies: 53 random bits × 2^-53.
        Self.run(seed: 0x0123_4567_89AB_CDEF) { Double($0.next() & 0x1F_FFFF_FFFF_FFFF) * 0x1p-53 }
    }

    @Test func shortDecimals() {
        // Few digits at every scale: the cases with ties and trailing zeros.
        Self.run(seed: 0xDEAD_BEEF_CAFE_F00D) { g in
            let digits = Double(g.next() % 1_000_000)
            let scale = Int(g.next() % 640) - 330
            return digits * pow(10, Double(scale))
        }
    }

    @Test func subnormalsAndEdges() {
        Self.run(seed: 0x5555_AAAA_3333_CCCC) { g in
            switch g.next() % 4 {
            case 0: return Double(bitPattern: g.next() & 0x000F_FFFF_FFFF_FFFF)          // subnormal
            case 1: return Double(bitPattern: (g.next() & 0x7FF0_0000_0000_0000))        // powers of two
            case 2: return Double(g.next() >> (g.next() % 64))                          // integers, 2^53 and up
            default:
                // Neighbours of powers of ten.
                let p = pow(10, Double(Int(g.next() % 600) - 300))
                let step = Int64(g.next() % 5) - 2
                return Double(bitPattern: UInt64(bitPattern: Int64(bitPattern: p.bitPattern) &+ step))
            }
        }
    }

    @Test(arguments: [
        (0.1, "0.1"), (0.3, "0.3"), (1.0 / 3, "0.3333333333333333"), (2.0 / 3, "0.6666666666666666"),
        (Double.leastNonzeroMagnitude, "5e-324"), (2.2250738585072014e-308, "2.2250738585072014e-308"),
        (1.7976931348623157e308, "1.7976931348623157e+308"), (1e21, "1e+21"), (1e-7, "1e-7"),
        (123e-20, "1.23e-18"), (9007199254740992, "9007199254740992"), (0.000001, "0.000001"),
        (-0.5, "-0.5"), (4.35, "4.35"), (2.5e-5, "0.000025"), (1.2345678901234567e25, "1.2345678901234566e+25"),
    ])
    func knownValues(_ value: Double, _ text: String) {
        var out: [UInt8] = []
        JSONNumberFormat.writeShortest(value, to: &out)
        #expect(String(decoding: out, as: UTF8.self) == text)
    }
}
