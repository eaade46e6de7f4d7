import CRDT
import Domain
import Foundation
import GRDB
import StoreSupport

/// Pulls: the current state of what changed after a cursor, read on a reader connection (a
/// snapshot), so pulls never queue behind pushes.
extension ServerDatabase {

    /// The current state of what changed after the request's cursor (see `TenantLedger.respond`).
    public func respond(to request: PullRequest, tenant: String, wall: UInt64) throws(PullFailure) -> PullResponse {
        // Pulls only read (so they do not queue behind pushes); a tenant's very first request
        // creates its ledger row first.
        if let response = try respondIfKnown(to: request, tenant: tenant, wall: wall) { return response }
        do { _ = try epoch(of: tenant) } catch { throw .store(error) }
        guard let response = try respondIfKnown(to: request, tenant: tenant, wall: wall) else {
            throw .store(StoreError(.corrupt, "\(path): tenant \(tenant) vanished"))
        }
        return response
    }

    /// The answer, in one read transaction; nil when the tenant has no ledger yet.
    func respondIfKnown(
        to request: PullRequest, tenant: String, wall: UInt64
    ) throws(PullFailure)
        -> PullResponse?
    {
        var stale: PullFailure?
        let response: PullResponse?
        do {
            response = try wrap {
                try database.read { db -> PullResponse? in
                    guard let ledger = try ledger(tenant, db) else { return nil }
                    let sameEpoch = request.epoch == ledger.epoch
                    if sameEpoch, request.cursor > 0, request.cursor < ledger.collectedThrough {
                        stale = .staleCursor(cursor: request.cursor, collectedThrough: ledger.collectedThrough)
                        return nil
                    }
                    let cursor = sameEpoch ? request.cursor : 0
                    let maxChanges = max(1, min(request.maxChanges, maxPullChanges))
                    var changes = [PulledChange]()
                    var bytes = 0
                    var next = cursor
                    var more = false
                    let rows = try Row.fetchCursor(
                        db,
                        sql:
                            "SELECT sequence, kind, id, fields FROM server_log WHERE tenant = ? AND sequence > ? ORDER BY sequence",
                        arguments: [tenant, Int64(clamping: cursor)])  // a peer may send any UInt64
                    while let row = try rows.next() {
                        let sequence = UInt64(row[0] as Int64)
                        let kindName: String = row[1]
                        let idText: String = row[2]
                        let fields = FieldMask(rawValue: UInt64(bitPattern: row[3] as Int64))
                        guard let kind = EntityKind(rawValue: kindName), let id = EntityID(text: idText) else {
                            throw StoreError(.corrupt, "\(path): bad log entry \(sequence)")
                        }
                        if let (change, size) = try projection(kind, id, tenant, fields: fields, at: sequence, db) {
                            if !changes.isEmpty && (changes.count >= maxChanges || bytes + size > request.maxBytes) {
                                more = true
                                break
                            }
                            changes.append(PulledChange(sequence: sequence, change: change))
                            bytes += size
                        }
                        next = sequence
                    }
                    // At the end of the log the replica is caught up, even when the last sequences
                    // have no log entry any more (collected, or superseded and removed).
                    if !more { next = max(next, ledger.sequence) }
                    return PullResponse(
                        epoch: ledger.epoch, changes: changes, nextCursor: next, hasMore: more, serverTime: wall)
                }
            }
        } catch {
            throw .store(error)
        }
        if let stale { throw stale }
        return response
    }

    /// The fields of `fields` that `sequence` still holds the latest change of, as a change, and
    /// the size of its encoded blob (what a pull's byte limit counts).
    func projection(
        _ kind: EntityKind, _ id: EntityID, _ tenant: String, fields: FieldMask, at sequence: UInt64, _ db: Database
    )
        throws -> (TenantState, size: Int)?
    {
        guard
            let row = try db.cachedStatement(sql: Self.selectEntity).firstRowBlobs(
                columns: 2, db, tenant, kind.rawValue, id.text)
        else { return nil }
        let sequences = try Self.decodeSequences(row[1])
        var live = FieldMask()
        for (index, last) in sequences.enumerated() where fields.contains(.field(index)) && last == sequence {
            live.insert(.field(index))
        }
        if live.isEmpty { return nil }
        // When the projection is every field the entity holds (the rule for a record changed
        // once, as in an initial sync), it is the stored entity as it is: no copy.
        func project<E: Entity>(_ type: E.Type) throws -> ORMap<EntityID, E> {
            let entity = try decodeEntity(E.self, row[0])
            return ORMap([id: entity.presentFields == live ? entity : entity.restricted(to: live)])
        }
        let change: TenantState
        switch kind {
        case .contact: change = TenantState(contacts: try project(Contact.self))
        case .note: change = TenantState(notes: try project(CallNote.self))
        case .schedule: change = TenantState(schedule: try project(ScheduleEntry.self))
        }
        // Measured by encoding it: the encoding of an entity depends on what precedes it in the
        // same writer (replica IDs and times already written are referred to), so the stored
        // bytes give only an upper bound, and the byte limit must match the reference ledger.
        return (change, change.encodedBlob().count)
    }

    static let selectEntity =
        "SELECT state, field_sequences FROM server_entity WHERE tenant = ? AND kind = ? AND id = ?"

    /// The tenant's whole merged state (for backups, checks and tests).
    public func state(of tenant: String) throws(StoreError) -> TenantState {
        try wrap {
            try database.read { db in
                try SQLiteFile.tenantState(
                    db, sql: "SELECT kind, id, state FROM server_entity WHERE tenant = ?", arguments: [tenant],
                    path: path,
                    recovery: Self.recovery)
            }
        }
    }
}
