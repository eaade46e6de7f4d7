/// Bytes that do not decode.
///
/// Says what was expected, what was found and at which byte offset, so a peer that sent a bad
/// blob can be told exactly what is wrong with it. Decoding never traps on bad input and never
/// allocates more than the input could describe.
public struct BinaryDecodingError: Error, Hashable, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Hashable, Sendable {
            case truncated
            case malformedVarint = "malformed-varint"
            case wrongType = "wrong-type"
            case unsupportedVersion = "unsupported-version"
            case invalidValue = "invalid-value"
            case tooLarge = "too-large"
            case tooDeep = "too-deep"
            case trailingBytes = "trailing-bytes"
        }
        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// The input ended in the middle of a value.
        public static let truncated = Code(.truncated)
        /// A variable-length integer ran past ten bytes or past 64 bits.
        public static let malformedVarint = Code(.malformedVarint)
        /// The blob is of a different type than the one asked for.
        public static let wrongType = Code(.wrongType)
        /// The blob's format version is not one this build reads.
        public static let unsupportedVersion = Code(.unsupportedVersion)
        /// A value is out of range, out of order, or not valid UTF-8.
        public static let invalidValue = Code(.invalidValue)
        /// A count or length claims more than the input can hold, or more than the limits allow.
        public static let tooLarge = Code(.tooLarge)
        /// Values nest deeper than the limit.
        public static let tooDeep = Code(.tooDeep)
        /// Bytes are left over after the value.
        public static let trailingBytes = Code(.trailingBytes)

        public var description: String { base.rawValue }
    }

    public let code: Code
    /// Byte offset into the input where the problem was found.
    public let offset: Int
    /// What was expected and what was found, in plain words.
    public let message: String

    public init(code: Code, offset: Int, message: String) {
        self.code = code
        self.offset = offset
        self.message = message
    }

    public var description: String { "\(code) at byte \(offset): \(message)" }
}
