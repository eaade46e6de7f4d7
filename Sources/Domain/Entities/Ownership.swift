import CRDT

/// A write in a pushed change that the pushing device cannot have made: an event stamped by
/// another replica, an author record for another device, or one that names another user for
/// the pushing device. Stamps and author records are what history and conflicts show as "who
/// wrote this", so a device that could send them would be putting words in a colleague's mouth.
public struct ForeignWrite: Hashable, Sendable {
    /// The entity and the field (`name`, `phones`, `customFields.crm`, `authors.<device>`, `id`).
    public let kind: EntityKind
    public let id: EntityID
    public let field: String
    /// The stamp the write carries; its replica is the device it claims to come from.
    public let stamp: HLC

    public init(kind: EntityKind, id: EntityID, field: String, stamp: HLC) {
        self.kind = kind
        self.id = id
        self.field = field
        self.stamp = stamp
    }
}

extension Entity {
    /// True when this delta may hold a write `author` did not make: it has seen events of
    /// another replica, or records an author other than `author`. False proves it holds none
    /// (every live event of a delta is covered by its knowledge), which is what lets a server
    /// skip the exact check (``foreignWrites(id:from:to:by:)``) for nearly every change.
    @inlinable
    public func mayHoldForeignWrites(by author: Author) -> Bool {
        var finder = OtherReplicaFinder(replica: author.device)
        visitFields(&finder)
        if finder.found { return true }
        return authors.records.contains { $0.device != author.device || $0.user.value != author.user }
    }

    /// The writes `after` holds and `before` lacked (`before` nil: a new entity) that `author`
    /// did not make. Removing or superseding someone else's value is not among them: that is
    /// the author's own act, stamped with the author's own stamp.
    ///
    /// `changed`: the fields that differ between `before` and `after` (a server has them from
    /// its merge); only those can hold a new write. `nil` looks at every field present.
    @inlinable
    public static func foreignWrites(
        id: EntityID, from before: Self?, to after: Self, by author: Author, changed: FieldMask? = nil
    ) -> [ForeignWrite] {
        var result = [ForeignWrite]()
        if before == nil, id.replica != author.device {
            // An ID is its creation stamp: a new entity under another device's ID claims that
            // device created it.
            result.append(ForeignWrite(kind: kind, id: id, field: "id", stamp: HLC(time: id.time, replica: id.replica)))
        }
        // Stamps only, and only on the changed fields: this runs on every edit of a colleague's
        // record; the field names are looked up for the few writes found.
        var finder = ForeignStampFinder(mask: (changed ?? after.presentFields).rawValue, author: author)
        (before ?? Self()).visitFields(beside: after, &finder)
        for (index, stamp) in finder.found {
            result.append(foreignWrite(id: id, field: index, stamp: stamp, in: after))
        }
        return result
    }

    /// A write the finder found, with its field's name (and key, for a map field).
    @usableFromInline
    static func foreignWrite(id: EntityID, field index: Int, stamp: HLC, in after: Self) -> ForeignWrite {
        let descriptor = fields[index]
        let field =
            descriptor.name == "authors"
            ? "authors.\(stamp.replica.hex)"
            : descriptor.liveEvents(after).first { $0.stamp == stamp }?.field ?? descriptor.name
        return ForeignWrite(kind: kind, id: id, field: field, stamp: stamp)
    }
}

/// Whether any field has seen another replica's events (the author records included: their
/// stamps are their knowledge).
@usableFromInline struct OtherReplicaFinder: FieldVisitor {
    @usableFromInline let replica: ReplicaID
    @usableFromInline var found = false
    @inlinable init(replica: ReplicaID) { self.replica = replica }
    @inlinable mutating func visit<F: FieldCRDT>(_ field: F) {
        if !found && field.hasSeen(anyReplicaBut: replica) { found = true }
    }
}

/// Walks `before`'s fields beside `after`'s and notes, in the fields of `mask`, the live stamps
/// `after` has and `before` lacks that are not `author`'s, and the author records that are not
/// `author`'s own under its own name. For an author record the stamp noted is the record's,
/// whose replica names the device recorded (a forged one carries the forger's stamp, so its
/// device is reported by key).
@usableFromInline struct ForeignStampFinder: FieldPairVisitor {
    @usableFromInline let mask: UInt64
    @usableFromInline let author: Author
    @usableFromInline var index = 0
    @usableFromInline var found: [(index: Int, stamp: HLC)] = []

    @inlinable init(mask: UInt64, author: Author) {
        self.mask = mask
        self.author = author
    }

    // Inlinable like the other visitors (Entity.swift): specialized per field type, the cast to
    // `Authors` and the stamp lists cost nothing for fields outside the mask.
    @inlinable mutating func visit<F: FieldCRDT>(_ field: F, beside other: F) {
        defer { index += 1 }
        guard mask & (1 << UInt64(index)) != 0 else { return }
        if let before = field as? Authors, let after = other as? Authors {
            for record in after.records {
                let (device, user) = (record.device, record.user)
                guard let stamp = user.stamp, before.register(of: device) != user else { continue }
                if device != author.device || stamp.replica != author.device || user.value != author.user {
                    found.append((index, HLC(time: stamp.time, replica: device)))
                }
            }
            return
        }
        let seen = field.liveStamps
        for stamp in other.liveStamps where stamp.replica != author.device && !seen.contains(stamp) {
            found.append((index, stamp))
        }
    }
}

extension TenantState {
    /// ``Entity/mayHoldForeignWrites(by:)`` over every entity of this delta.
    public func mayHoldForeignWrites(by author: Author) -> Bool {
        contacts.valueByKey.values.contains { $0.mayHoldForeignWrites(by: author) }
            || notes.valueByKey.values.contains { $0.mayHoldForeignWrites(by: author) }
            || schedule.valueByKey.values.contains { $0.mayHoldForeignWrites(by: author) }
    }
}
