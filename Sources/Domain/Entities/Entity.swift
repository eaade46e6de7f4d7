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
    /// Shows every field to `visitor`, in ``fields`` order.
    func visitFields<V: FieldVisitor>(_ visitor: inout V)
    /// Hands every field to `updater`, in ``fields`` order, with the same field of `other`.
    mutating func updateFields<U: FieldUpdater>(with other: Self, _ updater: inout U)
    /// Shows every field to `visitor` beside the same field of `other`, in ``fields`` order,
    /// changing neither (a walk with ``updateFields(with:_:)`` would copy a shared entity).
    func visitFields<V: FieldPairVisitor>(beside other: Self, _ visitor: inout V)
}

// The hot operations (merge, isBottom, encoding, knowledge, projections, field comparisons) go
// through the two listings above rather than the `fields` descriptors: a visitor is specialized
// per entity and field type and inlined, where a descriptor costs two closure calls and a copy
// (retain) of the field per field per entity, which led the store's import and pull profiles.
// The descriptors stay the reference the listings are checked against (`EntityFieldTests`) and
// serve the colder, per-field work of conflicts (live events, registers, rewriting a sibling).

/// Reads the fields of an entity, one after another (see ``Entity/visitFields(_:)``).
public protocol FieldVisitor {
    mutating func visit<F: FieldCRDT>(_ field: F)
}

/// Reads the fields of two entities of one type side by side (see
/// ``Entity/visitFields(beside:_:)``).
public protocol FieldPairVisitor {
    mutating func visit<F: FieldCRDT>(_ field: F, beside other: F)
}

/// Changes the fields of an entity, one after another, each with the same field of another
/// entity of its type (see ``Entity/updateFields(with:_:)``).
public protocol FieldUpdater {
    mutating func update<F: FieldCRDT>(_ field: inout F, with other: F)
}

@usableFromInline struct FieldMerger: FieldUpdater {
    @inlinable init() {}
    @inlinable mutating func update<F: FieldCRDT>(_ field: inout F, with other: F) {
        if !other.isBottom { field.merge(other) }
    }
}

@usableFromInline struct BottomCheck: FieldVisitor {
    @usableFromInline var isBottom = true
    @inlinable init() {}
    @inlinable mutating func visit<F: FieldCRDT>(_ field: F) { isBottom = isBottom && field.isBottom }
}

@usableFromInline struct PresenceCheck: FieldVisitor {
    @usableFromInline var mask: UInt64 = 0
    @usableFromInline var index: UInt64 = 0
    @inlinable init() {}
    @inlinable mutating func visit<F: FieldCRDT>(_ field: F) {
        if !field.isBottom { mask |= 1 << index }
        index += 1
    }
}

@usableFromInline struct KnowledgeCollector: FieldVisitor {
    @usableFromInline var knowledge = VersionVector()
    @inlinable init() {}
    @inlinable mutating func visit<F: FieldCRDT>(_ field: F) { knowledge.merge(field.knowledge) }
}

@usableFromInline struct NewestDotFinder: FieldVisitor {
    @usableFromInline var newest: Dot?
    @inlinable init() {}
    @inlinable mutating func visit<F: FieldCRDT>(_ field: F) { newest = newer(newest, field.newestDot) }
}

@usableFromInline struct FieldEncoder: FieldVisitor {
    @usableFromInline var writer: BinaryWriter
    @inlinable init(_ writer: BinaryWriter) { self.writer = writer }
    @inlinable mutating func visit<F: FieldCRDT>(_ field: F) {
        if !field.isBottom { field.encode(to: &writer) }
    }
}

/// Copies the fields in `mask` from the other entity.
@usableFromInline struct FieldCopier: FieldUpdater {
    @usableFromInline let mask: UInt64
    @usableFromInline var index: UInt64 = 0
    @inlinable init(mask: UInt64) { self.mask = mask }
    @inlinable mutating func update<F: FieldCRDT>(_ field: inout F, with other: F) {
        if mask & (1 << index) != 0 { field = other }
        index += 1
    }
}

/// Notes which fields in `mask` differ from the other entity's, changing nothing.
@usableFromInline struct FieldComparer: FieldPairVisitor {
    @usableFromInline let mask: UInt64
    @usableFromInline var index: UInt64 = 0
    @usableFromInline var differing: UInt64 = 0
    @inlinable init(mask: UInt64) { self.mask = mask }
    @inlinable mutating func visit<F: FieldCRDT>(_ field: F, beside other: F) {
        if mask & (1 << index) != 0 && field != other { differing |= 1 << index }
        index += 1
    }
}

/// Per device, the newest live write (a value, a set element) in the fields in `mask` of the
/// other entity that the same field of the walked entity has not seen.
@usableFromInline struct UnseenLiveWrites: FieldPairVisitor {
    @usableFromInline let mask: UInt64
    @usableFromInline var index: UInt64 = 0
    /// One dot per device (a handful at most: a linear search beats a dictionary).
    @usableFromInline var newest: [Dot] = []
    @inlinable init(mask: UInt64) { self.mask = mask }
    @inlinable mutating func visit<F: FieldCRDT>(_ field: F, beside other: F) {
        defer { index += 1 }
        guard mask & (1 << index) != 0 else { return }
        other.forEachLiveStamp { stamp in
            let dot = Dot(replica: stamp.replica, counter: stamp.time)
            if field.covers(dot) { return }
            if let at = newest.firstIndex(where: { $0.replica == dot.replica }) {
                if dot.counter > newest[at].counter { newest[at] = dot }
            } else {
                newest.append(dot)
            }
        }
    }
}

@usableFromInline struct FieldDecoder: FieldUpdater {
    @usableFromInline var reader: BinaryReader
    @usableFromInline let present: UInt64
    @usableFromInline var index: UInt64 = 0
    /// The first failure; the fields after it are left alone.
    @usableFromInline var failure: BinaryDecodingError?
    @inlinable init(_ reader: BinaryReader, present: UInt64) {
        self.reader = reader
        self.present = present
    }
    @inlinable mutating func update<F: FieldCRDT>(_ field: inout F, with other: F) {
        defer { index += 1 }
        guard failure == nil, present & (1 << index) != 0 else { return }
        do { field = try F(from: &reader) } catch { failure = error }
    }
}

extension Entity {
    @inlinable
    public mutating func merge(_ other: Self) {
        var merger = FieldMerger()
        updateFields(with: other, &merger)
    }

    /// `visitor` after it has seen every field.
    @inlinable
    func visited<V: FieldVisitor>(_ visitor: V) -> V {
        var visitor = visitor
        visitFields(&visitor)
        return visitor
    }

    @inlinable
    public var isBottom: Bool { visited(BottomCheck()).isBottom }

    /// The fields holding anything.
    @inlinable
    public var presentFields: FieldMask { FieldMask(rawValue: visited(PresenceCheck()).mask) }

    /// This entity with only the fields in `mask` (their whole current state).
    @inlinable
    public func restricted(to mask: FieldMask) -> Self {
        var result = Self()
        var copier = FieldCopier(mask: mask.rawValue)
        result.updateFields(with: self, &copier)
        return result
    }

    /// The fields `delta` holds whose value differs between `before` and `after`: what a server
    /// gives a new sequence number to.
    @inlinable
    public static func changedFields(touchedBy delta: Self, from before: Self, to after: Self) -> FieldMask {
        var comparer = FieldComparer(mask: delta.presentFields.rawValue)
        before.visitFields(beside: after, &comparer)
        return FieldMask(rawValue: comparer.differing)
    }

    /// Who wrote what `delta` brings that `before` had not seen: the devices with a live write
    /// (a value, a set element) in `delta` not covered by the same field of `before`, each with
    /// its newest such write, oldest first. What a receiver's audit trail names for a pulled
    /// change: several people when one pull brings several people's edits of an entity, nobody
    /// for what it had seen already (its own edits coming back). A change can still be visible
    /// with nobody named — a set element's removal carries no write; see
    /// ``changedFields(touchedBy:from:to:)``.
    @inlinable
    public static func writers(of delta: Self, unseenBy before: Self) -> [Dot] {
        var finder = UnseenLiveWrites(mask: delta.presentFields.rawValue)
        before.visitFields(beside: delta, &finder)
        // Usually one writer (or none): sorting would only copy the array.
        if finder.newest.count < 2 { return finder.newest }
        return finder.newest.sorted { $0.counter != $1.counter ? $0.counter < $1.counter : $0.replica < $1.replica }
    }

    /// Everything seen of this entity, over all fields.
    @inlinable
    public var knowledge: VersionVector { visited(KnowledgeCollector()).knowledge }

    /// `knowledge.newestDot`: the newest event seen of this entity, without building its
    /// knowledge (a version vector per field).
    @inlinable
    public var newestDot: Dot? { visited(NewestDotFinder()).newest }

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

    /// Every live event (current value, set element) of every field, in ``fields`` order: what
    /// an entity's history lists as "who wrote what it holds now".
    public var liveFieldEvents: [FieldEvent] { Self.fields.flatMap { $0.liveEvents(self) } }

    @inlinable
    public func encode(to writer: inout BinaryWriter) {
        writer.writeVarint(presentFields.rawValue)
        // The writer moves into the encoder and back (swapped, not copied: a copy would make
        // the next write copy the whole buffer).
        var encoder = FieldEncoder(BinaryWriter(capacity: 0))
        swap(&encoder.writer, &writer)
        visitFields(&encoder)
        swap(&encoder.writer, &writer)
    }

    @inlinable
    public init(from reader: inout BinaryReader) throws(BinaryDecodingError) {
        let present = try reader.readVarint("a field bitmap")
        guard present >> UInt64(Self.fields.count) == 0 else {
            throw reader.error(
                .invalidValue,
                "expected a \(Self.kind) with at most \(Self.fields.count) fields, found bitmap \(present)")
        }
        self.init()
        var decoder = FieldDecoder(BinaryReader(bytes: []), present: present)
        swap(&decoder.reader, &reader)
        updateFields(with: Self(), &decoder)
        swap(&decoder.reader, &reader)
        if let failure = decoder.failure { throw failure }
    }
}
