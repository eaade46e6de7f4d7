import CRDT

/// The sync protocol's messages: pure values, encoded as binary blobs (and JSON for browsers).
/// See docs/architecture/sync-protocol.md for the rules.
public enum SyncProtocol {
    /// The message format version this build speaks. A peer speaking another is refused with
    /// `incompatible-version` and told to upgrade.
    public static let version: UInt8 = 1
}

/// The identity of one life of the server's data. A server restored from a backup starts a new
/// epoch; replicas that see a new epoch re-push what they hold.
public struct ServerEpoch: RawRepresentable, Hashable, Sendable, Codable, CustomStringConvertible {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    public static func random(using generator: inout some RandomNumberGenerator) -> ServerEpoch {
        ServerEpoch(rawValue: .random(in: 1...UInt64.max, using: &generator))
    }
    public var description: String { ReplicaID(rawValue).hex }

    /// JSON carries epochs as 16 hex digits: a JavaScript client (the PWA) would round a
    /// 64-bit number.
    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard text.count == 16, let value = UInt64(text, radix: 16) else {
            throw DecodingError.dataCorrupted(
                DecodingError.Context(codingPath: decoder.codingPath, debugDescription: "an epoch is 16 hex digits"))
        }
        rawValue = value
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}

/// One change from a replica's outbox: a delta, keyed by (replica, local sequence) so that
/// sending it twice is harmless.
public struct PushChange: Equatable, Sendable, Codable {
    public let localSequence: UInt64
    public let change: TenantState

    public init(localSequence: UInt64, change: TenantState) {
        self.localSequence = localSequence
        self.change = change
    }
}

/// Replica → server: a bounded batch of outbox changes, in local-sequence order.
public struct PushBatch: Equatable, Sendable, Codable {
    public let protocolVersion: UInt8
    public let replica: ReplicaID
    /// The epoch the replica last synced with; `nil` before its first sync.
    public let epoch: ServerEpoch?
    public let changes: [PushChange]

    public init(
        replica: ReplicaID, epoch: ServerEpoch?, changes: [PushChange], protocolVersion: UInt8 = SyncProtocol.version
    ) {
        self.protocolVersion = protocolVersion
        self.replica = replica
        self.epoch = epoch
        self.changes = changes
    }
}

/// Why the server refused one change of a batch. The rest of the batch is unaffected.
public struct Rejection: Equatable, Sendable, Codable {
    public let localSequence: UInt64
    /// Stable: `clock-drift-exceeded`, `invalid-change`.
    public let code: String
    public let reason: String

    public init(localSequence: UInt64, code: String, reason: String) {
        self.localSequence = localSequence
        self.code = code
        self.reason = reason
    }
}

/// Server → replica: which changes are durably applied. Sent only after the server's
/// transaction is durable; the replica removes acknowledged changes from its outbox only then.
public struct PushAck: Equatable, Sendable, Codable {
    public let epoch: ServerEpoch
    /// Every change of the batch up to this local sequence was processed: applied, or listed in
    /// `rejected`.
    public let processedThrough: UInt64
    public let rejected: [Rejection]
    /// The server's wall clock (ms) when it answered: the replica's clock-offset hint.
    public let serverTime: UInt64

    public init(epoch: ServerEpoch, processedThrough: UInt64, rejected: [Rejection], serverTime: UInt64) {
        self.epoch = epoch
        self.processedThrough = processedThrough
        self.rejected = rejected
        self.serverTime = serverTime
    }
}

/// Replica → server: "changes after my cursor", bounded in count and bytes.
public struct PullRequest: Equatable, Sendable, Codable {
    public let protocolVersion: UInt8
    public let epoch: ServerEpoch?
    public let cursor: UInt64
    public let maxChanges: Int
    public let maxBytes: Int

    public init(
        epoch: ServerEpoch?, cursor: UInt64, maxChanges: Int, maxBytes: Int,
        protocolVersion: UInt8 = SyncProtocol.version
    ) {
        self.protocolVersion = protocolVersion
        self.epoch = epoch
        self.cursor = cursor
        self.maxChanges = maxChanges
        self.maxBytes = maxBytes
    }
}

/// One pulled change: the *current* state of the fields of one entity that changed after the
/// cursor (not their history), with the sequence number that last changed them.
public struct PulledChange: Equatable, Sendable, Codable {
    public let sequence: UInt64
    public let change: TenantState

    public init(sequence: UInt64, change: TenantState) {
        self.sequence = sequence
        self.change = change
    }
}

/// Server → replica: changes after the cursor, the cursor to ask from next, whether more remain.
public struct PullResponse: Equatable, Sendable, Codable {
    public let epoch: ServerEpoch
    public let changes: [PulledChange]
    public let nextCursor: UInt64
    public let hasMore: Bool
    public let serverTime: UInt64

    public init(epoch: ServerEpoch, changes: [PulledChange], nextCursor: UInt64, hasMore: Bool, serverTime: UInt64) {
        self.epoch = epoch
        self.changes = changes
        self.nextCursor = nextCursor
        self.hasMore = hasMore
        self.serverTime = serverTime
    }
}

extension BlobType {
    public static let pushBatch = BlobType(rawValue: 0x21)
    public static let pushAck = BlobType(rawValue: 0x22)
    public static let pullRequest = BlobType(rawValue: 0x23)
    public static let pullResponse = BlobType(rawValue: 0x24)
}

extension ServerEpoch: BinaryCodable {
    public func encode(to writer: inout BinaryWriter) { writer.writeFixed64(rawValue) }
    public init(from reader: inout BinaryReader) throws(BinaryDecodingError) {
        rawValue = try reader.readFixed64("a server epoch")
    }
}

extension Optional where Wrapped == ServerEpoch {
    func encode(to writer: inout BinaryWriter) {
        if let epoch = self {
            writer.writeByte(1)
            epoch.encode(to: &writer)
        } else {
            writer.writeByte(0)
        }
    }

    static func decode(from reader: inout BinaryReader) throws(BinaryDecodingError) -> ServerEpoch? {
        switch try reader.readByte("an epoch flag") {
        case 0: return nil
        case 1: return try ServerEpoch(from: &reader)
        case let other: throw reader.error(.invalidValue, "expected an epoch flag 0 or 1, found \(other)")
        }
    }
}

private func checkVersion(_ version: UInt8, _ reader: BinaryReader) throws(BinaryDecodingError) {
    guard version == SyncProtocol.version else {
        throw reader.error(
            .unsupportedVersion, "expected sync protocol version \(SyncProtocol.version), found \(version)")
    }
}

extension PushBatch: BinaryBlob {
    public static var blobType: BlobType { .pushBatch }

    public func encode(to writer: inout BinaryWriter) {
        writer.writeByte(protocolVersion)
        writer.writeFixed64(replica.rawValue)
        epoch.encode(to: &writer)
        writer.writeVarint(UInt64(changes.count))
        for change in changes {
            writer.writeVarint(change.localSequence)
            change.change.encode(to: &writer)
        }
    }

    public init(from reader: inout BinaryReader) throws(BinaryDecodingError) {
        protocolVersion = try reader.readByte("a protocol version")
        try checkVersion(protocolVersion, reader)
        replica = ReplicaID(try reader.readFixed64("a replica ID"))
        epoch = try Optional<ServerEpoch>.decode(from: &reader)
        let count = try reader.readCount("changes", minimumElementSize: 4)
        var changes = [PushChange]()
        for _ in 0..<count {
            let sequence = try reader.readVarint("a local sequence number")
            changes.append(PushChange(localSequence: sequence, change: try TenantState(from: &reader)))
        }
        self.changes = changes
    }
}

extension PushAck: BinaryBlob {
    public static var blobType: BlobType { .pushAck }

    public func encode(to writer: inout BinaryWriter) {
        epoch.encode(to: &writer)
        writer.writeVarint(processedThrough)
        writer.writeVarint(UInt64(rejected.count))
        for rejection in rejected {
            writer.writeVarint(rejection.localSequence)
            writer.writeString(rejection.code)
            writer.writeString(rejection.reason)
        }
        writer.writeVarint(serverTime)
    }

    public init(from reader: inout BinaryReader) throws(BinaryDecodingError) {
        epoch = try ServerEpoch(from: &reader)
        processedThrough = try reader.readVarint("a local sequence number")
        let count = try reader.readCount("rejections", minimumElementSize: 3)
        var rejected = [Rejection]()
        for _ in 0..<count {
            let sequence = try reader.readVarint("a local sequence number")
            let code = try reader.readString("a rejection code")
            rejected.append(Rejection(localSequence: sequence, code: code, reason: try reader.readString("a reason")))
        }
        self.rejected = rejected
        serverTime = try reader.readVarint("the server time")
    }
}

extension PullRequest: BinaryBlob {
    public static var blobType: BlobType { .pullRequest }

    public func encode(to writer: inout BinaryWriter) {
        writer.writeByte(protocolVersion)
        epoch.encode(to: &writer)
        writer.writeVarint(cursor)
        writer.writeVarint(UInt64(maxChanges))
        writer.writeVarint(UInt64(maxBytes))
    }

    public init(from reader: inout BinaryReader) throws(BinaryDecodingError) {
        protocolVersion = try reader.readByte("a protocol version")
        try checkVersion(protocolVersion, reader)
        epoch = try Optional<ServerEpoch>.decode(from: &reader)
        cursor = try reader.readVarint("a cursor")
        let maxChanges = try reader.readVarint("a change limit")
        let maxBytes = try reader.readVarint("a byte limit")
        guard maxChanges <= UInt64(Int32.max), maxBytes <= UInt64(Int32.max) else {
            throw reader.error(
                .invalidValue, "expected limits below 2^31, found \(maxChanges) changes, \(maxBytes) bytes")
        }
        self.maxChanges = Int(maxChanges)
        self.maxBytes = Int(maxBytes)
    }
}

extension PullResponse: BinaryBlob {
    public static var blobType: BlobType { .pullResponse }

    public func encode(to writer: inout BinaryWriter) {
        epoch.encode(to: &writer)
        writer.writeVarint(UInt64(changes.count))
        for change in changes {
            writer.writeVarint(change.sequence)
            change.change.encode(to: &writer)
        }
        writer.writeVarint(nextCursor)
        hasMore.encode(to: &writer)
        writer.writeVarint(serverTime)
    }

    public init(from reader: inout BinaryReader) throws(BinaryDecodingError) {
        epoch = try ServerEpoch(from: &reader)
        let count = try reader.readCount("changes", minimumElementSize: 4)
        var changes = [PulledChange]()
        changes.reserveCapacity(count)
        for _ in 0..<count {
            let sequence = try reader.readVarint("a sequence number")
            changes.append(PulledChange(sequence: sequence, change: try TenantState(from: &reader)))
        }
        self.changes = changes
        nextCursor = try reader.readVarint("a cursor")
        hasMore = try Bool(from: &reader)
        serverTime = try reader.readVarint("the server time")
    }
}
