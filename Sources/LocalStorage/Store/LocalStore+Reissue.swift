import CRDT
import Domain
import Foundation
import GRDB
import StoreSupport

extension LocalStore {
    /// The `store_meta` key that records, per old replica, which of its refused changes were
    /// re-issued here and the IDs their creations got (a key rather than a table: the record is
    /// small, read once per run, and needs no schema change).
    static func reissueKey(_ replica: ReplicaID) -> String { "reissued_from_\(replica.hex)" }

    struct ReissueRecord: Codable {
        var sequences: [UInt64] = []
        /// Old entity ID text → new entity ID text.
        var ids: [String: String] = [:]
    }

    /// Re-issues `refused` here: each refused change not re-issued before becomes new commands
    /// stamped by this replica's clock (``TenantState/reissue(_:ids:context:)``), written like
    /// any local write (validation, outbox, audit with action `reissue`). All of one run commit
    /// in ONE transaction together with the record of what was re-issued, so a run is all or
    /// nothing and a second run skips what the first one made. With `dryRun` nothing is written.
    ///
    /// - Throws: ``ReissueError`` (the same replica, another tenant, nothing refused),
    ///   ``WriteError`` (a re-made command refused by validation, naming the refused change, or
    ///   the store failing). Nothing changes then.
    public func reissue(_ refused: RefusedChanges, wall: UInt64, dryRun: Bool = false) throws -> ReissueReport {
        if refused.identity.replica == identity.replica {
            throw ReissueError(
                .sameReplica, refused.directory,
                "\(refused.directory) is this replica; give the directory of the OLD replica whose changes were refused"
            )
        }
        if refused.identity.tenant != identity.tenant {
            throw ReissueError(
                .otherTenant, refused.directory,
                "\(refused.directory) belongs to tenant \(refused.identity.tenant), this replica to \(identity.tenant)",
                detail: refused.identity.tenant)
        }
        if refused.changes.isEmpty {
            throw ReissueError(
                .nothingRefused, refused.directory, "replica \(refused.identity.replica.hex) has no refused changes")
        }
        let key = Self.reissueKey(refused.identity.replica)
        var record = try Self.wrap("reading \(path)") {
            try database.read { db in
                try String.fetchOne(db, sql: "SELECT value FROM store_meta WHERE key = ?", arguments: [key])
                    .map { try decodeJSON(ReissueRecord.self, $0) } ?? ReissueRecord()
            }
        }
        var ids = [EntityID: EntityID]()
        for (old, new) in record.ids {
            if let old = EntityID(text: old), let new = EntityID(text: new) { ids[old] = new }
        }
        // Everything runs on copies; they replace the store's only after the commit.
        var state = self.state
        var clock = self.clock
        let author = Author(user: identity.user, device: identity.replica)
        let settings = options.settings
        let time = correctedTime(wall: wall)
        var deltas = [TenantState]()
        var reissued = [ReissueReport.Reissued]()
        var already = [UInt64]()
        for change in refused.changes {
            if record.sequences.contains(change.localSequence) {
                already.append(change.localSequence)
                continue
            }
            let outcome: Reissue
            do {
                outcome = try state.reissue(change.change, ids: &ids) {
                    WriteContext(author: author, stamp: clock.now(wall: time), settings: settings)
                }
            } catch {
                throw WriteError.invalid(
                    ValidationError(
                        field: error.field, code: error.code,
                        message: "refused change #\(change.localSequence) cannot be re-issued: \(error.message)"))
            }
            deltas += outcome.deltas
            record.sequences.append(change.localSequence)
            for (old, new) in outcome.created { record.ids[old.text] = new.text }
            reissued.append(
                ReissueReport.Reissued(
                    localSequence: change.localSequence, code: change.code, commands: outcome.deltas.count,
                    created: outcome.created.sorted { $0.key < $1.key }.map { old, new in
                        ReissueReport.Created(kind: Self.kind(of: old, in: change.change), old: old, new: new)
                    }, leftOut: outcome.leftOut))
        }
        let report = ReissueReport(
            from: refused.identity.replica.hex, dryRun: dryRun, reissued: reissued, alreadyReissued: already)
        if dryRun || reissued.isEmpty { return report }
        var combined = TenantState()
        for delta in deltas { combined.merge(delta) }
        let finalClock = clock
        let finalRecord = record
        try Self.wrap("writing to \(path)") {
            try database.write { db in
                let writer = RowWriter(db)
                try persistEntities(of: combined, in: state, before: self.state, writer)
                for delta in deltas {
                    let stamp = delta.newestStamp ?? finalClock.last
                    try db.execute(
                        sql: "INSERT INTO outbox (change, created_hlc) VALUES (?, ?)",
                        arguments: [Data(delta.encodedBlob()), stamp.text])
                    try audit(delta, stamp: stamp, user: identity.user, action: "reissue", writer)
                }
                try db.execute(
                    sql: "UPDATE store_meta SET value = ? WHERE key = 'hlc_last'", arguments: [finalClock.last.text])
                try db.execute(
                    sql:
                        "INSERT INTO store_meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    arguments: [key, try encodeJSON(finalRecord)])
            }
        }
        self.state = state
        self.clock = finalClock
        return report
    }

    private static func kind(of id: EntityID, in change: TenantState) -> EntityKind {
        change.contacts[id] != nil ? .contact : change.notes[id] != nil ? .note : .schedule
    }
}
