import HeraldProtocol

/// The text a writer appends to an empty buffer.
func written(_ write: (inout [UInt8]) -> Void) -> String {
    var out: [UInt8] = []
    write(&out)
    return String(decoding: out, as: UTF8.self)
}

/// JSONWriter's output for one number.
func js(_ d: Double) -> String {
    written { JSONWriter.writeNumber(d, to: &$0) }
}

/// Parses UTF-8 text's bytes as one request line.
func request(_ text: String) -> Request {
    request(Array(text.utf8))
}

func request(_ bytes: [UInt8]) -> Request {
    bytes.withUnsafeBytes { RequestParser.parse($0) }
}

/// A small deterministic PRNG (SplitMix64), so fuzz runs are repeatable.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
