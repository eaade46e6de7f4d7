import CRDT

/// The stable identity of a contact, call note or schedule entry.
///
/// Made from the HLC stamp of the entity's creation: the creating replica's stamps are unique
/// and only grow, so IDs are unique without coordination, need no random source, and sort by
/// creation time. The text form is 32 hex digits (time, then replica).
public struct EntityID: Hashable, Comparable, Sendable {
    public let time: UInt64
    public let replica: ReplicaID

    public init(time: UInt64, replica: ReplicaID) {
        self.time = time
        self.replica = replica
    }

    /// The ID of an entity created by the event stamped `stamp`.
    public init(creation stamp: HLC) {
        self.init(time: stamp.time, replica: stamp.replica)
    }

    public static func < (lhs: EntityID, rhs: EntityID) -> Bool {
        lhs.time != rhs.time ? lhs.time < rhs.time : lhs.replica < rhs.replica
    }

    public var text: String { String(hexFields: (time, 16), (replica.rawValue, 16)) }

    /// Parses ``text``; `nil` for anything else.
    public init?(text: some StringProtocol) {
        let text = String(text)
        guard text.utf8.count == 32, let time = UInt64(text.prefix(16), radix: 16),
            let replica = ReplicaID(hex: text.suffix(16))
        else { return nil }
        self.init(time: time, replica: replica)
    }
}

extension EntityID: CustomStringConvertible {
    public var description: String { text }
}

extension EntityID: Codable {
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        guard let id = EntityID(text: text) else {
            throw DecodingError.dataCorruptedError(
                in: container, debugDescription: "expected an entity ID of 32 hex digits, found \"\(text)\"")
        }
        self = id
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(text)
    }
}

extension EntityID: BinaryCodable {
    public func encode(to writer: inout BinaryWriter) {
        writer.writeTime(time)
        writer.writeReplica(replica)
    }

    public init(from reader: inout BinaryReader) throws(BinaryDecodingError) {
        let time = try reader.readTime()
        self.init(time: time, replica: try reader.readReplica())
    }
}

/// Who made a change: the user and the device (replica) they made it on.
public struct Author: Hashable, Sendable, Codable {
    public let user: String
    public let device: ReplicaID

    public init(user: String, device: ReplicaID) {
        self.user = user
        self.device = device
    }
}
