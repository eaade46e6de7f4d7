import CRDT
import Foundation

/// A schedule entry's time: start, end and the time zone it was planned in, as ONE value.
///
/// Kept in one register so concurrent edits can never combine one replica's start with
/// another's end: a move is a single write, and two concurrent moves are two siblings.
/// Times are milliseconds since 1970 (UTC); `end` is exclusive and after `start`.
public struct Interval: Hashable, Comparable, Sendable, Codable {
    public let start: Int64
    public let end: Int64
    /// An IANA time zone name (`Europe/Prague`), for showing the entry in local time.
    public let timeZone: String

    /// A validated interval.
    ///
    /// - Throws: ``ValidationError`` `end-not-after-start`, `out-of-range` (longer than the
    ///   limit) or `invalid-time-zone`.
    public init(start: Int64, end: Int64, timeZone: String, limits: Limits = .standard) throws(ValidationError) {
        guard end > start else {
            throw ValidationError(
                field: "end", code: .endNotAfterStart,
                message: "end (\(Interval.iso(end))) must be after start (\(Interval.iso(start)))")
        }
        guard end - start <= limits.maxIntervalMilliseconds else {
            throw ValidationError(
                field: "end", code: .outOfRange,
                message:
                    "the entry lasts \((end - start) / 86_400_000) days; at most \(limits.maxIntervalMilliseconds / 86_400_000) are allowed"
            )
        }
        guard TimeZone(identifier: timeZone) != nil else {
            throw ValidationError(
                field: "time-zone", code: .invalidTimeZone,
                message: "\"\(timeZone)\" is not a time zone name; use one like Europe/Prague or UTC")
        }
        self.init(unchecked: start, end, timeZone)
    }

    init(unchecked start: Int64, _ end: Int64, _ timeZone: String) {
        self.start = start
        self.end = end
        self.timeZone = timeZone
    }

    /// True when the two intervals share any instant (touching ends do not overlap).
    public func overlaps(_ other: Interval) -> Bool {
        start < other.end && other.start < end
    }

    public static func < (lhs: Interval, rhs: Interval) -> Bool {
        (lhs.start, lhs.end, lhs.timeZone) < (rhs.start, rhs.end, rhs.timeZone)
    }

    static func iso(_ milliseconds: Int64) -> String {
        Date(timeIntervalSince1970: Double(milliseconds) / 1000).formatted(.iso8601)
    }
}

extension Interval: CustomStringConvertible {
    public var description: String { "\(Interval.iso(start)) – \(Interval.iso(end)) (\(timeZone))" }
}

extension Interval: BinaryCodable {
    public func encode(to writer: inout BinaryWriter) {
        writer.writeSignedVarint(start)
        writer.writeVarint(UInt64(end - start))
        writer.writeString(timeZone)
    }

    public init(from reader: inout BinaryReader) throws(BinaryDecodingError) {
        let start = try reader.readSignedVarint("an interval start")
        let length = try reader.readVarint("an interval length")
        guard length > 0, length < UInt64(Int64.max), start.addingReportingOverflow(Int64(length)).overflow == false
        else {
            throw reader.error(.invalidValue, "expected an interval length above zero, found \(length)")
        }
        self.init(unchecked: start, start + Int64(length), try reader.readString("a time zone"))
    }
}

/// Whether an entity is live, deleted, or merged into another (for duplicate contacts).
///
/// Deletion is an ordinary write to this register, so a delete concurrent with a restore is a
/// concurrent-values conflict, and a delete concurrent with an edit is a delete-vs-edit conflict:
/// `seen` records everything the deleting replica had seen of the entity, and any edit it did not
/// cover is one the deleter never saw.
public enum Lifecycle: Hashable, Comparable, Sendable, Codable {
    case active
    case deleted(seen: VersionVector)
    case merged(into: EntityID, seen: VersionVector)

    public var isActive: Bool { self == .active }

    /// What the deleting (or merging) replica had seen.
    public var seen: VersionVector? {
        switch self {
        case .active: nil
        case .deleted(let seen), .merged(_, let seen): seen
        }
    }

    private var rank: Int {
        switch self {
        case .active: 0
        case .deleted: 1
        case .merged: 2
        }
    }

    public static func < (lhs: Lifecycle, rhs: Lifecycle) -> Bool {
        if lhs.rank != rhs.rank { return lhs.rank < rhs.rank }
        switch (lhs, rhs) {
        case (.merged(let a, let sa), .merged(let b, let sb)):
            return a != b ? a < b : sa.entries.lexicographicallyPrecedes(sb.entries)
        default:
            return (lhs.seen?.entries ?? []).lexicographicallyPrecedes(rhs.seen?.entries ?? [])
        }
    }
}

extension Lifecycle: BinaryCodable {
    public func encode(to writer: inout BinaryWriter) {
        switch self {
        case .active:
            writer.writeByte(0)
        case .deleted(let seen):
            writer.writeByte(1)
            seen.encode(to: &writer)
        case .merged(let into, let seen):
            writer.writeByte(2)
            into.encode(to: &writer)
            seen.encode(to: &writer)
        }
    }

    public init(from reader: inout BinaryReader) throws(BinaryDecodingError) {
        switch try reader.readByte("a lifecycle tag") {
        case 0: self = .active
        case 1: self = .deleted(seen: try VersionVector(from: &reader))
        case 2:
            let into = try EntityID(from: &reader)
            self = .merged(into: into, seen: try VersionVector(from: &reader))
        case let other: throw reader.error(.invalidValue, "expected a lifecycle tag 0, 1 or 2, found \(other)")
        }
    }
}

/// An optional reference to another entity, as a register value ("no contact" is a value one
/// can write, unlike a register that was never written).
public struct Reference: Hashable, Comparable, Sendable, Codable {
    public let id: EntityID?

    public init(_ id: EntityID?) {
        self.id = id
    }

    public static func < (lhs: Reference, rhs: Reference) -> Bool {
        switch (lhs.id, rhs.id) {
        case (nil, nil): false
        case (nil, _): true
        case (_, nil): false
        case (let a?, let b?): a < b
        }
    }
}

extension Reference: BinaryCodable {
    public func encode(to writer: inout BinaryWriter) {
        if let id {
            writer.writeByte(1)
            id.encode(to: &writer)
        } else {
            writer.writeByte(0)
        }
    }

    public init(from reader: inout BinaryReader) throws(BinaryDecodingError) {
        switch try reader.readByte("a reference flag") {
        case 0: self.init(nil)
        case 1: self.init(try EntityID(from: &reader))
        case let other: throw reader.error(.invalidValue, "expected a reference flag 0 or 1, found \(other)")
        }
    }
}

/// "These two overlapping schedule entries are fine as they are", tied to the exact interval
/// values accepted: if either entry moves, the acceptance no longer matches.
public struct OverlapAcceptance: Hashable, Comparable, Sendable, Codable {
    public let first: EntityID
    public let second: EntityID
    public let firstInterval: HLC
    public let secondInterval: HLC

    public static func < (lhs: OverlapAcceptance, rhs: OverlapAcceptance) -> Bool {
        (lhs.first, lhs.second, lhs.firstInterval, lhs.secondInterval)
            < (rhs.first, rhs.second, rhs.firstInterval, rhs.secondInterval)
    }
}

extension OverlapAcceptance: BinaryCodable {
    public func encode(to writer: inout BinaryWriter) {
        first.encode(to: &writer)
        second.encode(to: &writer)
        writer.writeStamp(firstInterval)
        writer.writeStamp(secondInterval)
    }

    public init(from reader: inout BinaryReader) throws(BinaryDecodingError) {
        first = try EntityID(from: &reader)
        second = try EntityID(from: &reader)
        firstInterval = try reader.readStamp()
        secondInterval = try reader.readStamp()
    }
}
