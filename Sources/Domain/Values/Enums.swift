import CRDT

/// A closed set of values stored by name, so the wire format survives reordering the cases.
/// Parsing an unknown name fails with a ``ValidationError`` that lists the accepted names.
public protocol DomainEnum: RawRepresentable, CaseIterable, Hashable, Comparable, Sendable, Codable,
    BinaryCodable
where RawValue == String {
    /// The field name used in errors.
    static var fieldName: String { get }
}

extension DomainEnum {
    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }

    /// The value named `text` (case-insensitive), or a validation error listing the names.
    public init(parsing text: String) throws(ValidationError) {
        let key = text.trimmingWhitespace().lowercased()
        guard let value = Self.allCases.first(where: { $0.rawValue == key }) else {
            let names = Self.allCases.map(\.rawValue).joined(separator: ", ")
            throw ValidationError(
                field: Self.fieldName, code: .unknownValue,
                message: "\(Self.fieldName) \"\(text)\" is not one of: \(names)")
        }
        self = value
    }

    public func encode(to writer: inout BinaryWriter) {
        writer.writeString(rawValue)
    }

    public init(from reader: inout BinaryReader) throws(BinaryDecodingError) {
        let name = try reader.readString("a name of \(Self.fieldName)")
        guard let value = Self(rawValue: name) else {
            throw reader.error(.invalidValue, "expected a \(Self.fieldName) name, found \"\(name)\"")
        }
        self = value
    }
}

/// Where a contact stands.
public enum ContactStatus: String, DomainEnum {
    case lead, active, inactive
    case doNotCall = "do-not-call"
    public static let fieldName = "status"
}

public enum CallDirection: String, DomainEnum {
    case inbound = "in"
    case outbound = "out"
    public static let fieldName = "direction"
}

public enum CallOutcome: String, DomainEnum {
    case reached, voicemail, busy
    case noAnswer = "no-answer"
    case callbackRequested = "callback-requested"
    case wrongNumber = "wrong-number"
    public static let fieldName = "outcome"
}

public enum ScheduleKind: String, DomainEnum {
    case callback, appointment, shift
    public static let fieldName = "kind"
}

public enum ScheduleStatus: String, DomainEnum {
    case planned, done, cancelled
    public static let fieldName = "status"
}
