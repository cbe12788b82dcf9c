/// Why a JSON text was refused, and the byte offset where that was found.
public struct JSONError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A short English reason such as `unexpected end of input`.
    public let message: String
    /// The byte offset in the input where the problem was found.
    public let offset: Int

    public init(message: String, offset: Int) {
        self.message = message
        self.offset = offset
    }

    public var description: String {
        var text = message
        text += " at offset "
        text += String(offset)
        return text
    }
}
