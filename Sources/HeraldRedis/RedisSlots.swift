/// Redis Cluster key slots: CRC16 (XMODEM) of the key, or of its hash tag, modulo 16384.
/// A hash tag is the text between the first `{` and the first `}` after it, when that is
/// not empty: `{herald:}rooms` and `{herald:}w:abc` share a slot.
public enum RedisSlots {
    public static let count = 16_384

    public static func slot(of key: [UInt8]) -> Int {
        key.withUnsafeBufferPointer { slot(of: UnsafeRawBufferPointer($0)) }
    }

    public static func slot(of key: String) -> Int { slot(of: Array(key.utf8)) }

    public static func slot(of key: UnsafeRawBufferPointer) -> Int {
        var start = 0
        var end = key.count
        if let open = key.firstIndex(of: UInt8(ascii: "{")),
           let close = key[(open + 1)...].firstIndex(of: UInt8(ascii: "}")), close > open + 1 {
            start = open + 1
            end = close
        }
        var crc: UInt16 = 0
        var index = start
        while index < end {
            crc = (crc << 8) ^ table[Int(UInt8(truncatingIfNeeded: crc >> 8) ^ key[index])]
            index += 1
        }
        return Int(crc & 0x3FFF)
    }

    /// CRC16-CCITT (XMODEM): polynomial 0x1021, initial value 0.
    public static func crc16(_ bytes: [UInt8]) -> UInt16 {
        var crc: UInt16 = 0
        for byte in bytes { crc = (crc << 8) ^ table[Int(UInt8(truncatingIfNeeded: crc >> 8) ^ byte)] }
        return crc
    }

    private static let table: [UInt16] = (0..<256).map { value in
        var crc = UInt16(value) << 8
        for _ in 0..<8 { crc = crc & 0x8000 != 0 ? (crc << 1) ^ 0x1021 : crc << 1 }
        return crc
    }
}
