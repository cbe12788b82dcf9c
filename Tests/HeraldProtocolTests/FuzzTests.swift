import Testing
import HeraldProtocol

/// Random input must never trap. Fixed seeds keep runs repeatable.
@Suite struct Fuzz {
    /// Random bytes, biased towards JSON punctuation, line ends and UTF-8 lead bytes.
    func randomBytes(_ rng: inout SplitMix64, maxCount: Int) -> [UInt8] {
        let alphabet = Array("{}[]\":,\\u0123456789abcdefEe+-.tnrl \r\n".utf8) + [0x00, 0x04, 0x7F, 0x80, 0xBF, 0xC3, 0xE2, 0xED, 0xF0, 0xF4, 0xFF]
        let count = Int.random(in: 0...maxCount, using: &rng)
        return (0..<count).map { _ in
            Bool.random(using: &rng) ? alphabet.randomElement(using: &rng)! : UInt8.random(in: 0...255, using: &rng)
        }
    }

    /// Starts from valid JSON and flips, drops or inserts a few bytes.
    func mutatedJSON(_ rng: inout SplitMix64) -> [UInt8] {
        let seeds: [String] = [
            #"{"action":"cacheTest","params":{"key":"k","value":"\ud83d\ude00 \n"}}"#,
            #"[1,-2.5e+3,true,false,null,"x",{"a":[{}]}]"#,
            #"{"a":{"a":{"a":[1,2,{"b":"\u0041"}]}},"a":0.5}"#,
        ]
        var bytes = Array(seeds.randomElement(using: &rng)!.utf8)
        for _ in 0..<Int.random(in: 1...4, using: &rng) {
            let at = Int.random(in: 0..<bytes.count, using: &rng)
            switch Int.random(in: 0..<3, using: &rng) {
            case 0: bytes[at] = UInt8.random(in: 0...255, using: &rng)
            case 1: bytes.remove(at: at)
            default: bytes.insert(UInt8.random(in: 0...255, using: &rng), at: at)
            }
            if bytes.isEmpty { break }
        }
        return bytes
    }

    @Test func parsersNeverTrap() {
        var rng = SplitMix64(seed: 0x4845_5241_4C44)
        var accepted = 0
        for i in 0..<6_000 {
            let bytes = i % 2 == 0 ? randomBytes(&rng, maxCount: 64) : mutatedJSON(&rng)
            if let value = try? JSONParser.parse(bytes, maxDepth: 8) {
                accepted += 1
                // Whatever parses must write and parse back to itself.
                #expect((try? JSONParser.parse(JSONWriter.bytes(value))) == value)
            }
            let r = request(bytes)
            if case .bad(let text) = r { #expect(text.hasPrefix("Error: ")) }
            _ = bytes.withUnsafeBytes { TelnetBreak.isBreak($0) }
        }
        #expect(accepted > 0)
    }

    @Test func framerNeverTrapsAndLosesNothing() {
        var rng = SplitMix64(seed: 7)
        for _ in 0..<2_000 {
            let limit = Int.random(in: 1...40, using: &rng)
            var framer = LineFramer(maxLineBytes: limit)
            let stream = randomBytes(&rng, maxCount: 200)
            // Reference: split on \r and \n, drop empties, long ones become tooLong.
            var expected: [Framed] = []
            var current: [UInt8] = []
            for b in stream {
                if b == 0x0A || b == 0x0D {
                    if current.count > limit { expected.append(.tooLong) }
                    else if !current.isEmpty { expected.append(.line(String(decoding: current, as: UTF8.self))) }
                    current = []
                } else {
                    current.append(b)
                }
            }
            if current.count > limit { expected.append(.tooLong) }
            // Feed in random pieces.
            var chunks: [[UInt8]] = []
            var at = 0
            while at < stream.count {
                let n = Int.random(in: 1...max(1, stream.count - at), using: &rng)
                chunks.append(Array(stream[at..<at + n]))
                at += n
            }
            let got = framer.collect(chunks)
            #expect(got == expected)
            #expect(framer.bufferedByteCount == (current.count > limit ? 0 : current.count))
        }
    }
}
