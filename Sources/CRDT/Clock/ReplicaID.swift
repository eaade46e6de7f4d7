/// The identity of one replica (a device's local store, or the server when it writes).
///
/// A 64-bit random number chosen once per replica and never reused: if a replica loses its
/// state it must start again under a new ID, because every CRDT here trusts that a replica's
/// own stamps only ever grow. The order of IDs breaks ties between equal hybrid-logical-clock
/// readings, so every replica picks the same winner.
public struct ReplicaID: RawRepresentable, Hashable, Comparable, Sendable {
    public let rawValue: UInt64

    @inlinable
    public init(rawValue: UInt64) {
        self.rawValue = rawValue
    }

    @inlinable
    public init(_ rawValue: UInt64) {
        self.rawValue = rawValue
    }

    @inlinable
    public static func < (lhs: ReplicaID, rhs: ReplicaID) -> Bool {
        lhs.rawValue < rhs.rawValue
    }

    /// A new random replica ID from the system's random source.
    public static func random() -> ReplicaID {
        var generator = SystemRandomNumberGenerator()
        return random(using: &generator)
    }

    public static func random(using generator: inout some RandomNumberGenerator) -> ReplicaID {
        ReplicaID(UInt64.random(in: 1...UInt64.max, using: &generator))
    }

    /// Sixteen lower-case hex digits: fixed width, so the text sorts like the number.
    public var hex: String { String(hexFields: (rawValue, 16)) }

    /// Parses the 16-hex-digit form written by ``hex``; `nil` for anything else.
    public init?(hex: some StringProtocol) {
        guard hex.utf8.count == 16, let value = UInt64(hex, radix: 16) else { return nil }
        self.rawValue = value
    }
}

extension ReplicaID: CustomStringConvertible {
    public var description: String { hex }
}

extension ReplicaID: Codable {
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        guard let id = ReplicaID(hex: text) else {
            throw DecodingError.dataCorruptedError(
                in: container, debugDescription: "expected a replica ID of 16 hex digits, found \"\(text)\"")
        }
        self = id
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(hex)
    }
}
