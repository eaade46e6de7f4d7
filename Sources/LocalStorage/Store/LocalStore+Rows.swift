import CRDT
import Domain
import Foundation
import GRDB
import GRDBSQLite
import StoreSupport

extension LocalStore {
    /// Writes every entity `change` touched, as it is in `state` (after the change): see
    /// ``RowWrites/add(_:in:before:)``.
    func persistEntities(
        of change: TenantState, in state: TenantState, before: TenantState?, _ writer: RowWriter
    )
        throws
    {
        var writes = RowWrites()
        writes.add(change, in: state, before: before)
        try writes.run(writer)
    }

    /// One audit row per entity `change` touched, all at `stamp`.
    func audit(_ change: TenantState, stamp: HLC, user: String, action: String, _ writer: RowWriter) throws {
        let entities =
            change.contacts.keys.map { (EntityKind.contact, $0) } + change.notes.keys.map { (.note, $0) }
            + change.schedule.keys.map { (.schedule, $0) }
        try audit(entities, stamp: stamp, user: user, action: action, writer)
    }

    /// One audit row per entity, given by its kind and ID, numbered in this order, all at `stamp`.
    func audit(
        _ entities: [(kind: EntityKind, id: EntityID)], stamp: HLC, user: String, action: String, _ writer: RowWriter
    ) throws {
        let at = stamp
        let device = stamp.replica.hex
        var seq = try writer.reserveAudit(entities.count)
        for (kind, id) in entities {
            try writer.run(.audit, kind.rawValue, id, seq, at, user, device, action)
            seq += 1
        }
    }
}
