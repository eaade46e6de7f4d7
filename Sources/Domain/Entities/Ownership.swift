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
    public func mayHoldForeignWrites(by author: Author) -> Bool {
        if knowledge.entries.contains(where: { $0.replica != author.device }) { return true }
        return authors.userByDevice.valueByKey.contains { device, user in
            device != author.device || user.value != author.user
        }
    }

    /// The writes `after` holds and `before` lacked (`before` nil: a new entity) that `author`
    /// did not make. Removing or superseding someone else's value is not among them: that is
    /// the author's own act, stamped with the author's own stamp.
    public static func foreignWrites(
        id: EntityID, from before: Self?, to after: Self, by author: Author
    )
        -> [ForeignWrite]
    {
        var result = [ForeignWrite]()
        if before == nil, id.replica != author.device {
            // An ID is its creation stamp: a new entity under another device's ID claims that
            // device created it.
            result.append(ForeignWrite(kind: kind, id: id, field: "id", stamp: HLC(time: id.time, replica: id.replica)))
        }
        for field in fields where field.name != "authors" {
            let seen = Set((before.map { field.liveEvents($0) } ?? []).map(\.stamp))
            for event in field.liveEvents(after)
            where event.stamp.replica != author.device && !seen.contains(event.stamp) {
                result.append(ForeignWrite(kind: kind, id: id, field: event.field, stamp: event.stamp))
            }
        }
        let recorded = before?.authors.userByDevice.valueByKey ?? [:]
        for (device, user) in after.authors.userByDevice.valueByKey.sorted(by: { $0.key < $1.key }) {
            guard let stamp = user.stamp, recorded[device] != user else { continue }
            let own = device == author.device && stamp.replica == author.device && user.value == author.user
            if !own { result.append(ForeignWrite(kind: kind, id: id, field: "authors.\(device.hex)", stamp: stamp)) }
        }
        return result
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
