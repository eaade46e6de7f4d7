import CRDT
import Domain
import Foundation
import GRDB
import StoreSupport

extension LocalStore {
    /// The outbox: changes not yet acknowledged, oldest first. Refused ones are left out (they
    /// wait for the user; see ``rejectedChanges()``).
    ///
    /// At most `limit` changes and, past the first, about `maxBytes` encoded bytes: only what
    /// the next push can carry is read and decoded.
    public func pendingChanges(limit: Int = .max, maxBytes: Int = .max) throws(StoreError) -> [PushChange] {
        try Self.wrap("reading the outbox of \(path)") {
            try database.read { db in
                var result = [PushChange]()
                var bytes = 0
                let rows = try Row.fetchCursor(
                    db, sql: "SELECT local_seq, change FROM outbox WHERE rejected_code IS NULL ORDER BY local_seq")
                while result.count < limit, let row = try rows.next() {
                    let data: Data = row["change"]
                    if !result.isEmpty && bytes + data.count > maxBytes { break }
                    bytes += data.count
                    let sequence: Int64 = row["local_seq"]
                    do {
                        result.append(PushChange(localSequence: UInt64(sequence), change: try TenantState(blob: data)))
                    } catch {
                        throw StoreError(
                            .corrupt, "outbox change \(sequence) does not decode (\(error)); \(Self.recovery)")
                    }
                }
                return result
            }
        }
    }

    /// Changes the server refused, with its reasons.
    public func rejectedChanges() throws(StoreError) -> [Rejection] {
        try Self.wrap("reading the outbox of \(path)") {
            try database.read { db in
                try Row.fetchAll(
                    db,
                    sql:
                        "SELECT local_seq, rejected_code, rejected_reason FROM outbox WHERE rejected_code IS NOT NULL ORDER BY local_seq"
                ).map { row in
                    Rejection(
                        localSequence: UInt64(row["local_seq"] as Int64), code: row["rejected_code"],
                        reason: row["rejected_reason"])
                }
            }
        }
    }

    /// The number of changes waiting to be pushed.
    public func outboxCount() throws(StoreError) -> Int {
        try Self.wrap("reading the outbox of \(path)") {
            try database.read { db in
                try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM outbox WHERE rejected_code IS NULL") ?? 0
            }
        }
    }

    /// Makes the session's new value and the effects of its actions durable in ONE transaction
    /// (the protocol requires it: see `ReplicaSyncSession`), then updates memory.
    ///
    /// `session` is the value after `receive(...)` returned `actions`; cursor advances requested
    /// by `.apply` actions are made here, inside the same transaction as the apply.
    ///
    /// The three steps — ``prepare(session:actions:wall:)``, ``write(_:)``, ``adopt(_:)`` — are
    /// public so the sync engine can prepare the next pulled batch while this one is written.
    public func commit(
        session newSession: ReplicaSyncSession, actions: [ReplicaSyncSession.Action], wall: UInt64
    )
        throws(StoreError)
    {
        let prepared = try prepare(session: newSession, actions: actions, wall: wall)
        try write(prepared)
        adopt(prepared)
    }

    /// What a sync step is prepared against: this store's state and clock, with — when the
    /// previous step is prepared but not yet in memory — that step's result over them.
    public func commitBase(after previous: PreparedCommit? = nil) -> CommitBase {
        let base = CommitBase(state: state, newer: [], clock: clock, auditsPulls: options.auditsPulls)
        return previous.map { base.after($0) } ?? base
    }

    /// Prepares a sync step against this store as it is now (see ``commitBase(after:)``).
    public func prepare(
        session: ReplicaSyncSession, actions: [ReplicaSyncSession.Action], wall: UInt64
    ) throws(StoreError) -> PreparedCommit {
        try commitBase().prepare(session: session, actions: actions, wall: wall)
    }

    /// Writes a prepared step in ONE transaction; memory is not touched (``adopt(_:)`` follows).
    /// Throws without changing anything on disk when the transaction fails. The step must have
    /// been prepared against this store's current state: the previous step, if any, adopted.
    public func write(_ prepared: PreparedCommit) throws(StoreError) {
        let repush = prepared.actions.contains(.repushEverything)
        try Self.wrap("committing a sync step to \(path)") {
            try database.write { db in
                // Prepared against the state in memory: if another process wrote since, the step
                // is refused and the sync engine reloads and starts over from what is durable.
                try requireCurrent(db)
                for action in prepared.actions {
                    switch action {
                    case .removeFromOutbox(let sequences):
                        let delete = try db.cachedStatement(sql: "DELETE FROM outbox WHERE local_seq = ?")
                        for sequence in sequences { try delete.execute(arguments: [Int64(sequence)]) }
                    case .keepRejected(let rejections):
                        let mark = try db.cachedStatement(
                            sql: "UPDATE outbox SET rejected_code = ?, rejected_reason = ? WHERE local_seq = ?")
                        for rejection in rejections {
                            try mark.execute(arguments: [
                                rejection.code, rejection.reason, Int64(rejection.localSequence),
                            ])
                        }
                    case .apply, .repushEverything, .pullAgain:
                        break
                    }
                }
                if !prepared.merged.isBottom {
                    let writer = RowWriter(db)
                    try prepared.writes.run(writer)
                    var seq = try writer.reserveAudit(prepared.pullAudit.count)
                    for row in prepared.pullAudit {
                        try writer.run(.audit, row.kind, row.id, seq, row.at, row.user, row.device, "pull")
                        seq += 1
                    }
                    try db.execute(
                        sql: "UPDATE store_meta SET value = ? WHERE key = 'hlc_last'",
                        arguments: [prepared.clock.last.text])
                }
                if repush {
                    // The server was restored: everything we hold goes out again.
                    // `merged` holds every entity the step touched, merged with what we hold.
                    var everything = state
                    everything.mergeJoined(prepared.merged)
                    let insert = try db.cachedStatement(sql: "INSERT INTO outbox (change, created_hlc) VALUES (?, ?)")
                    for chunk in everything.chunked(entitiesPerChange: 100) {
                        try insert.execute(arguments: [Data(chunk.encodedBlob()), prepared.clock.last.text])
                    }
                }
                try db.execute(
                    sql: "UPDATE sync_state SET session = ?, last_sync_ms = ? WHERE id = 1",
                    arguments: [prepared.sessionJSON, Int64(prepared.wall)])
            }
        }
    }

    /// Takes a written step into memory. Only the touched entities, merged, were built; the
    /// whole state takes them in place (copying it per batch made a 100,000-contact sync
    /// quadratic, and merging the change a second time cost as much as building them).
    ///
    /// Nothing else may hold a copy of `state` now (a ``CommitBase`` of a step being prepared):
    /// taking the step in would copy all of it. Returns the entities' versions the step replaced,
    /// for the caller to free where it suits (the sync engine: off the path between two writes).
    @discardableResult
    public func adopt(_ prepared: PreparedCommit) -> TenantState.Replaced {
        let replaced = state.mergeJoined(prepared.merged)
        session = prepared.session
        clock = prepared.clock
        return replaced
    }

    /// Re-bootstraps after the server refused the pull cursor as older than its retention: in ONE
    /// transaction, forgets every entity (their rows, CRDT state and derived conflicts) and
    /// restarts the pull from cursor 0, so what the server sends next is the whole truth and a
    /// record deleted while this replica was away does not live on here.
    ///
    /// Refuses while the outbox holds changes not yet pushed: they would be lost. Refused changes
    /// stay in the outbox with their reasons (the user's record of them); the audit trail stays.
    public func rebootstrap(wall: UInt64) throws(StoreError) {
        if dataVersionChanged() { try reload() }
        var session = self.session
        session.restartPull()
        let finalSession = session
        try Self.wrap("re-bootstrapping \(path)") {
            try database.write { db in
                let pending = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM outbox WHERE rejected_code IS NULL") ?? 0
                guard pending == 0 else {
                    throw StoreError(
                        .io, "\(pending) local changes are not pushed yet; push them before re-bootstrapping")
                }
                for table in [
                    "contacts", "contact_phones", "contact_emails", "contact_tags", "contact_fields",
                    "call_notes", "note_tags", "schedule_entries", "schedule_assignees", "conflicts",
                ] {
                    try db.execute(sql: "DELETE FROM \(table)")
                }
                try db.execute(
                    sql: "UPDATE sync_state SET session = ?, last_sync_ms = ? WHERE id = 1",
                    arguments: [try encodeJSON(finalSession), Int64(wall)])
            }
        }
        state = TenantState()
        self.session = finalSession
    }

    /// True when another process committed to the file since this store read it.
    package func dataVersionChanged() -> Bool {
        ((try? database.read { db in try Self.dataVersion(db) }) ?? dataVersion) != dataVersion
    }

    /// Records the server this replica syncs with.
    public func setServer(_ url: String) throws(StoreError) {
        try Self.wrap("writing to \(path)") {
            try database.write { db in
                try db.execute(sql: "UPDATE sync_state SET server_url = ? WHERE id = 1", arguments: [url])
            }
        }
        serverURL = url
    }

    /// When the last sync step committed (ms since 1970), if ever.
    public func lastSync() throws(StoreError) -> UInt64? {
        try Self.wrap("reading \(path)") {
            try database.read { db in try Int64.fetchOne(db, sql: "SELECT last_sync_ms FROM sync_state WHERE id = 1") }
                .map { UInt64($0) }
        }
    }

    /// Derives the open conflicts from the state and stores them in the `conflicts` table (for
    /// tools reading the file), returning them.
    @discardableResult
    public func refreshConflicts() throws(StoreError) -> [Conflict] {
        if dataVersionChanged() { try reload() }
        let conflicts = state.conflicts()
        try Self.wrap("writing to \(path)") {
            try database.write { db in
                try db.execute(sql: "DELETE FROM conflicts")
                let insert = try db.cachedStatement(sql: "INSERT INTO conflicts (id, kind, detail) VALUES (?, ?, ?)")
                for conflict in conflicts {
                    try insert.execute(arguments: [conflict.id, conflict.kind.rawValue, try encodeJSON(conflict)])
                }
            }
        }
        return conflicts
    }
}
