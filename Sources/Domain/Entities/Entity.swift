import CRDT

public enum EntityKind: String, Hashable, Comparable, Sendable, Codable, CaseIterable {
    case contact, note, schedule

    public static func < (lhs: EntityKind, rhs: EntityKind) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// A contact, call note or schedule entry: a product of field CRDTs, merged field by field.
///
/// Conforming types list their fields once in ``fields`` (in a fixed order: a field's index is
/// its bit in encodings and ``FieldMask``s, so new fields go at the end); merging, encoding,
/// projection onto changed fields and conflict inspection come from that list.
public protocol Entity: Mergeable, BinaryCodable, Codable {
    static var kind: EntityKind { get }
    static var fields: [FieldDescriptor<Self>] { get }
    var lifecycle: MVRegister<Lifecycle> { get set }
    var authors: Authors { get set }
}

extension Entity {
    public mutating func merge(_ other: Self) {
        for field in Self.fields where !field.isBottom(other) { field.merge(&self, other) }
    }

    public var isBottom: Bool { Self.fields.allSatisfy { $0.isBottom(self) } }

    /// The fields holding anything.
    public var presentFields: FieldMask {
        var mask = FieldMask()
        for (index, field) in Self.fields.enumerated() where !field.isBottom(self) { mask.insert(.field(index)) }
        return mask
    }

    /// This entity with only the fields in `mask` (their whole current state).
    public func restricted(to mask: FieldMask) -> Self {
        var result = Self()
        for (index, field) in Self.fields.enumerated() where mask.contains(.field(index)) { field.copy(&result, self) }
        return result
    }

    /// The fields `delta` holds whose value differs between `before` and `after`: what a server
    /// gives a new sequence number to.
    public static func changedFields(touchedBy delta: Self, from before: Self, to after: Self) -> FieldMask {
        var changed = FieldMask()
        for (index, field) in fields.enumerated() where !field.isBottom(delta) && !field.equals(before, after) {
            changed.insert(.field(index))
        }
        return changed
    }

    /// Everything seen of this entity, over all fields.
    public var knowledge: VersionVector {
        Self.fields.reduce(into: VersionVector()) { $0.merge($1.knowledge(self)) }
    }

    /// Everything seen of what people edit (bookkeeping fields such as the lifecycle and the
    /// authors left out).
    public var contentKnowledge: VersionVector {
        Self.fields.reduce(into: VersionVector()) { if $1.isContent { $0.merge($1.knowledge(self)) } }
    }

    /// True when this (delta) writes only a deletion or merge: a lifecycle that is not active
    /// and nothing people edit.
    public var isOnlyDeletion: Bool {
        !lifecycle.isBottom && lifecycle.values.allSatisfy { !$0.isActive } && contentKnowledge.isEmpty
    }

    /// Live, not deleted nor merged away. An entity whose creation has not arrived yet counts as
    /// not existing.
    public var isActive: Bool { lifecycle.value == .active }
    public var exists: Bool { !lifecycle.isBottom }

    /// The user behind a device that touched this entity.
    public func user(of device: ReplicaID) -> String { authors[device] ?? "unknown user" }

    public func encode(to writer: inout BinaryWriter) {
        let present = presentFields
        writer.writeVarint(present.rawValue)
        for (index, field) in Self.fields.enumerated() where present.contains(.field(index)) {
            field.encode(self, &writer)
        }
    }

    public init(from reader: inout BinaryReader) throws(BinaryDecodingError) {
        let present = try reader.readVarint("a field bitmap")
        guard present >> UInt64(Self.fields.count) == 0 else {
            throw reader.error(
                .invalidValue,
                "expected a \(Self.kind) with at most \(Self.fields.count) fields, found bitmap \(present)")
        }
        self.init()
        for (index, field) in Self.fields.enumerated() where present & (1 << UInt64(index)) != 0 {
            try field.decode(&self, &reader)
        }
    }
}
