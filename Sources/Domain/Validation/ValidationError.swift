/// Input a command refuses.
///
/// Names the field and the reason in plain words, with a stable ``code`` for programs (the HTTP
/// layer turns it into an RFC 9457 problem document; the CLI prints ``message``). A command that
/// throws this has changed nothing.
public struct ValidationError: Error, Hashable, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Hashable, Sendable {
            case required
            case tooLong = "too-long"
            case tooMany = "too-many"
            case invalidPhone = "invalid-phone"
            case invalidEmail = "invalid-email"
            case invalidTimeZone = "invalid-time-zone"
            case endNotAfterStart = "end-not-after-start"
            case outOfRange = "out-of-range"
            case unknownValue = "unknown-value"
            case unknownReference = "unknown-reference"
            case deletedReference = "deleted-reference"
            case invalidFormat = "invalid-format"
            case notApplicable = "not-applicable"
        }
        private let base: Base
        private init(_ base: Base) { self.base = base }

        public static let required = Code(.required)
        public static let tooLong = Code(.tooLong)
        public static let tooMany = Code(.tooMany)
        public static let invalidPhone = Code(.invalidPhone)
        public static let invalidEmail = Code(.invalidEmail)
        public static let invalidTimeZone = Code(.invalidTimeZone)
        public static let endNotAfterStart = Code(.endNotAfterStart)
        public static let outOfRange = Code(.outOfRange)
        public static let unknownValue = Code(.unknownValue)
        public static let unknownReference = Code(.unknownReference)
        public static let deletedReference = Code(.deletedReference)
        public static let invalidFormat = Code(.invalidFormat)
        /// The operation does not fit the thing it was applied to (e.g. picking a sibling of a
        /// conflict that has none).
        public static let notApplicable = Code(.notApplicable)

        public var description: String { base.rawValue }
    }

    /// The field, as the user named it (`phone`, `end`, `field.customer-no`).
    public let field: String
    public let code: Code
    /// A plain sentence: what is wrong and what is accepted.
    public let message: String

    public init(field: String, code: Code, message: String) {
        self.field = field
        self.code = code
        self.message = message
    }

    public var description: String { "\(field): \(message)" }
}

/// The limits commands enforce. Generous for people, small enough that one record cannot take
/// a server down.
public struct Limits: Hashable, Sendable, Codable {
    public var shortText = 200
    public var address = 500
    public var noteBody = 100_000
    public var tag = 64
    public var setElements = 50
    public var customFields = 50
    public var customFieldKey = 64
    public var customFieldValue = 1_000
    public var maxCallDuration: UInt32 = 24 * 3_600
    public var maxIntervalMilliseconds: Int64 = 366 * 86_400_000

    public init() {}

    public static let standard = Limits()
}

/// Checks a text field: trimmed, non-empty when required, within `limit` characters.
func validatedText(_ text: String, field: String, limit: Int, required: Bool = false) throws(ValidationError) -> String
{
    let trimmed = text.trimmingWhitespace()
    if required && trimmed.isEmpty {
        throw ValidationError(field: field, code: .required, message: "\(field) is required and cannot be empty")
    }
    // A text has at most as many characters as UTF-8 bytes: count them (grapheme breaking, the
    // slow part) only when the bytes exceed the limit.
    if trimmed.utf8.count > limit && trimmed.count > limit {
        throw ValidationError(
            field: field, code: .tooLong,
            message: "\(field) has \(trimmed.count) characters; at most \(limit) are allowed")
    }
    // The control characters (general category Cc) are exactly U+0000–001F and U+007F–009F.
    let isControl = { (scalar: Unicode.Scalar) in scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value) }
    if trimmed.unicodeScalars.contains(where: { isControl($0) && $0 != "\n" && $0 != "\t" }) {
        throw ValidationError(field: field, code: .invalidFormat, message: "\(field) contains control characters")
    }
    return trimmed
}

extension String {
    func trimmingWhitespace() -> String {
        // Nothing to trim when both ends are visible ASCII (no Unicode property lookups).
        if let first = utf8.first, let last = utf8.last, (0x21...0x7E).contains(first), (0x21...0x7E).contains(last) {
            return self
        }
        let scalars = unicodeScalars
        guard let first = scalars.firstIndex(where: { !$0.properties.isWhitespace }) else { return "" }
        let last = scalars.lastIndex(where: { !$0.properties.isWhitespace })!
        return String(scalars[first...last])
    }
}
