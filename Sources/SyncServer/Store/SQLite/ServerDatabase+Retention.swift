import CRDT
import Domain
import Foundation
import GRDB
import StoreSupport

/// Garbage collection: what the server may forget, and when.
///
/// Two kinds of records are collected:
/// - **Superseded log entries**: a `server_log` entry all of whose fields were changed again
///   later is never served (a pull sends the current state, once), so it is removed at once.
/// - **Tombstones**: a deleted (or merged-away) entity is removed with its log entries once
///   (1) its deletion reached the server at least the retention period ago, measured by the
///   server's clock (a checkpoint of the tenant's sequence is kept at every run, so a device
///   with a clock a year behind cannot make a fresh deletion look old), (2) every active device
///   of the tenant — not revoked, seen within the retention — has pulled past every change of
///   it, (3) its deletion is not in conflict (one lifecycle value) and (4) for a contact, no
///   live call note or schedule entry refers to it. What remains is its ID and version vector in
///   `collected_entity`, so a late change to it is recognised: ignored when it adds nothing,
///   refused with `entity-collected` when it carries new edits or adds a note or schedule entry
///   to a collected contact — a deleted record never comes back, nothing points at one, and the
///   user who edited it is told.
///
/// A device whose cursor (same epoch) is below the tenant's `collected_through` may have
/// missed a deletion whose record is gone; its pulls are refused with 410 `stale-cursor`, and
/// the replica pushes its outbox and re-bootstraps.
extension ServerDatabase {
    /// Collects what every tenant may forget (see the type's comment). `retention` is in ms.
    /// Runs in short write transactions so pushes are not held up; safe beside a serving server
    /// (another process's `sync-server gc` too).
    public func collectGarbage(retention: UInt64, wall: UInt64) throws(StoreError) -> GarbageCollection {
        try wrap {
            var total = GarbageCollection()
            let tenants = try database.read { db in try String.fetchAll(db, sql: "SELECT tenant FROM tenant_ledger") }
            for tenant in tenants {
                let collected = try collect(tenant: tenant, retention: retention, wall: wall)
                total.tenants += 1
                total.logEntries += collected.logEntries
                total.tombstones += collected.tombstones
                total.tombstonesWaiting += collected.tombstonesWaiting
            }
            return total
        }
    }

    /// One tombstone that may go.
    private struct Candidate {
        let kind: EntityKind
        let id: String
        let fieldSequences: Data
        let knowledge: VersionVector
        let deletedMs: UInt64
        let lastSequence: UInt64
        let contact: EntityID?
    }

    private func collect(tenant: String, retention: UInt64, wall: UInt64) throws -> GarbageCollection {
        var result = GarbageCollection()
        // The checkpoint first: it dates every sequence given so far by the server's clock.
        try database.write { db in
            guard let ledger = try ledger(tenant, db) else { return }
            try db.execute(
                sql: "INSERT OR REPLACE INTO retention_checkpoint (tenant, at_ms, sequence) VALUES (?, ?, ?)",
                arguments: [tenant, Int64(clamping: wall), Int64(clamping: ledger.sequence)])
        }
        let horizon = wall >= retention ? wall - retention : 0
        // One read transaction: a consistent view of the ledger, the devices and the entities.
        let (candidates, deadLog) = try database.read { db -> ([Candidate], [Int64]) in
            guard let ledger = try ledger(tenant, db) else { return ([], []) }
            // Changes up to `old` reached the server at least `retention` ago.
            let old =
                try Int64.fetchOne(
                    db,
                    sql: """
                        SELECT sequence FROM retention_checkpoint WHERE tenant = ? AND at_ms <= ?
                        ORDER BY at_ms DESC LIMIT 1
                        """, arguments: [tenant, Int64(clamping: horizon)]
                ).map { UInt64($0) } ?? 0
            // Every active device has pulled up to `pulled`.
            let pulled =
                try Int64.fetchOne(
                    db,
                    sql: """
                        SELECT MIN(cursor) FROM device WHERE tenant = ? AND revoked_ms IS NULL
                        AND COALESCE(last_seen_ms, created_ms) >= ?
                        """, arguments: [tenant, Int64(clamping: horizon)]
                ).map { UInt64($0) } ?? ledger.sequence
            let bound = min(old, pulled)
            var live = Set<UInt64>()
            var candidates = [Candidate]()
            var referenced = Set<EntityID>()
            let rows = try Row.fetchCursor(
                db, sql: "SELECT kind, id, state, field_sequences FROM server_entity WHERE tenant = ?",
                arguments: [tenant])
            while let row = try rows.next() {
                let sequences = try Self.decodeSequences(row[3])
                for sequence in sequences where sequence > 0 { live.insert(sequence) }
                let kindName: String = row[0]
                guard let kind = EntityKind(rawValue: kindName) else {
                    throw StoreError(.corrupt, "\(path): entity of unknown kind \(kindName)")
                }
                let lastSequence = sequences.max() ?? 0
                let idText: String = row[1]
                let fieldSequences: Data = row[3]
                let blob: Data = row[2]
                func consider<E: Entity>(_ entity: E, contact: EntityID? = nil) {
                    // A live entity that refers to a contact keeps that contact's tombstone (a
                    // note on a deleted contact is a conflict someone must still see).
                    if entity.isActive, let contact { referenced.insert(contact) }
                    guard lastSequence <= bound, entity.lifecycle.siblings.count == 1,
                        let deletion = entity.lifecycle.siblings.first, !deletion.payload.isActive
                    else { return }
                    candidates.append(
                        Candidate(
                            kind: kind, id: idText, fieldSequences: fieldSequences, knowledge: entity.knowledge,
                            deletedMs: deletion.stamp.time, lastSequence: lastSequence,
                            contact: kind == .contact ? EntityID(text: idText) : nil))
                }
                switch kind {
                case .contact: consider(try decodeEntity(Contact.self, blob))
                case .note:
                    let note = try decodeEntity(CallNote.self, blob)
                    consider(note, contact: note.contact.value?.id)
                case .schedule:
                    let entry = try decodeEntity(ScheduleEntry.self, blob)
                    consider(entry, contact: entry.contact.value?.id)
                }
            }
            let waiting = candidates.count
            candidates.removeAll { candidate in candidate.contact.map { referenced.contains($0) } ?? false }
            result.tombstonesWaiting = waiting - candidates.count
            // Log entries no field points at any more (only up to the ledger's sequence as read
            // here: a later push may add entries this scan did not see; what is dead stays dead).
            let dead = try Int64.fetchAll(
                db, sql: "SELECT sequence FROM server_log WHERE tenant = ? AND sequence <= ?",
                arguments: [tenant, Int64(clamping: ledger.sequence)]
            ).filter { !live.contains(UInt64($0)) }
            return (candidates, dead)
        }
        for chunk in deadLog.chunks(of: 2_000) {
            try database.write { db in
                let delete = try db.cachedStatement(sql: "DELETE FROM server_log WHERE tenant = ? AND sequence = ?")
                for sequence in chunk { try delete.execute(arguments: [tenant, sequence]) }
            }
            result.logEntries += chunk.count
        }
        for chunk in candidates.chunks(of: 500) {
            result.tombstones += try database.write { db -> Int in
                var removed = 0
                var through: UInt64 = 0
                for candidate in chunk {
                    // Changed since the scan (a late edit arrived): not this time.
                    let current = try Data.fetchOne(
                        db,
                        sql: "SELECT field_sequences FROM server_entity WHERE tenant = ? AND kind = ? AND id = ?",
                        arguments: [tenant, candidate.kind.rawValue, candidate.id])
                    guard current == candidate.fieldSequences else { continue }
                    try db.execute(
                        sql: "DELETE FROM server_entity WHERE tenant = ? AND kind = ? AND id = ?",
                        arguments: [tenant, candidate.kind.rawValue, candidate.id])
                    for sequence in Set(try Self.decodeSequences(candidate.fieldSequences)) where sequence > 0 {
                        try db.execute(
                            sql: "DELETE FROM server_log WHERE tenant = ? AND sequence = ?",
                            arguments: [tenant, Int64(clamping: sequence)])
                    }
                    try db.execute(
                        sql: """
                            INSERT OR REPLACE INTO collected_entity (tenant, kind, id, knowledge, deleted_ms, collected_ms)
                            VALUES (?, ?, ?, ?, ?, ?)
                            """,
                        arguments: [
                            tenant, candidate.kind.rawValue, candidate.id, Data(candidate.knowledge.encodedBlob()),
                            Int64(clamping: candidate.deletedMs), Int64(clamping: wall),
                        ])
                    through = max(through, candidate.lastSequence)
                    removed += 1
                }
                try db.execute(
                    sql: "UPDATE tenant_ledger SET collected_through = MAX(collected_through, ?) WHERE tenant = ?",
                    arguments: [Int64(clamping: through), tenant])
                return removed
            }
        }
        // Only the newest checkpoint older than the retention is ever needed again.
        try database.write { db in
            try db.execute(
                sql: """
                    DELETE FROM retention_checkpoint WHERE tenant = ? AND at_ms < (
                        SELECT MAX(at_ms) FROM retention_checkpoint WHERE tenant = ? AND at_ms <= ?)
                    """, arguments: [tenant, tenant, Int64(clamping: horizon)])
        }
        return result
    }

    /// What a collected entity had seen, if `id` was collected.
    func collectedKnowledge(
        _ tenant: String, _ kind: EntityKind, _ id: String, _ db: Database
    ) throws
        -> VersionVector?
    {
        guard
            let blob = try Data.fetchOne(
                db.cachedStatement(
                    sql: "SELECT knowledge FROM collected_entity WHERE tenant = ? AND kind = ? AND id = ?"),
                arguments: [tenant, kind.rawValue, id])
        else { return nil }
        return try VersionVector(blob: blob)
    }

    /// The contact a note or schedule entry refers to.
    static func contactReference<E: Entity>(of entity: E) -> EntityID? {
        (entity as? CallNote)?.contact.value?.id ?? (entity as? ScheduleEntry)?.contact.value?.id
    }

    /// The refusal of a change that edits collected entities (the rest of it was applied).
    static func collectedRejection(_ localSequence: UInt64, _ entities: [EntityRef]) -> Rejection {
        let names = entities.prefix(3).map { "\($0.kind) \($0.id)" }.joined(separator: ", ")
        let more = entities.count > 3 ? " and \(entities.count - 3) more" : ""
        return Rejection(
            localSequence: localSequence, code: "entity-collected",
            reason:
                "\(names)\(more) was deleted longer ago than the server's retention period and its record removed; "
                + "this change's edits to it, and notes or entries it adds to it, were not applied "
                + "(the rest of the change was)")
    }

    /// The records of `tenant` whose tombstones were collected.
    public func collectedEntities(of tenant: String) throws(StoreError) -> [EntityRef] {
        try wrap {
            try database.read { db in
                try Row.fetchAll(
                    db, sql: "SELECT kind, id FROM collected_entity WHERE tenant = ? ORDER BY kind, id",
                    arguments: [tenant]
                ).map { row in
                    let kindName: String = row[0]
                    let idText: String = row[1]
                    guard let kind = EntityKind(rawValue: kindName), let id = EntityID(text: idText) else {
                        throw StoreError(.corrupt, "\(path): bad collected entity \(row)")
                    }
                    return EntityRef(kind, id)
                }
            }
        }
    }

    /// Tombstones collected so far in `tenant`, and the tenant's `collected_through`.
    public func collectedCount(of tenant: String) throws(StoreError) -> (entities: Int, through: UInt64) {
        try wrap {
            try database.read { db in
                let count =
                    try Int.fetchOne(
                        db, sql: "SELECT COUNT(*) FROM collected_entity WHERE tenant = ?", arguments: [tenant]) ?? 0
                return (count, try ledger(tenant, db)?.collectedThrough ?? 0)
            }
        }
    }
}

extension Array {
    fileprivate func chunks(of size: Int) -> [ArraySlice<Element>] {
        stride(from: 0, to: count, by: size).map { self[$0..<Swift.min($0 + size, count)] }
    }
}
