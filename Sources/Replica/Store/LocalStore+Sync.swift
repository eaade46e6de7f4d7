import CRDT
import Domain
import Foundation
import GRDB

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
    public func commit(
        session newSession: ReplicaSyncSession, actions: [ReplicaSyncSession.Action], wall: UInt64
    )
        throws(StoreError)
    {
        var session = newSession
        var clock = self.clock
        var applied = TenantState()
        for action in actions {
            if case .apply(let change, let cursor) = action {
                applied.merge(change)
                session.didApplyPull(through: cursor)
                if let newest = change.newestStamp {
                    // Observe what we pulled so later local writes are stamped after it; a stamp
                    // beyond our drift bound was accepted by the server, so trust the server's.
                    _ = try? clock.receive(newest, wall: UInt64(max(0, Int64(wall) + session.clockOffset)))
                }
            }
        }
        // Only the touched entities, merged, are built here; after the commit the whole state
        // takes them in place (copying it per batch made a 100,000-contact sync quadratic, and
        // merging the change a second time cost as much as building them).
        let merged = state.merged(with: applied)
        let repush = actions.contains(.repushEverything)
        let finalClock = clock
        try Self.wrap("committing a sync step to \(path)") {
            try database.write { db in
                for action in actions {
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
                if !applied.isBottom {
                    let writer = RowWriter(db)
                    try persistEntities(of: applied, in: merged, before: state, writer)
                    if options.auditsPulls {
                        try audit(applied, stamp: finalClock.last, user: "(server)", action: "pull", writer)
                    }
                    try db.execute(
                        sql: "UPDATE store_meta SET value = ? WHERE key = 'hlc_last'", arguments: [finalClock.last.text]
                    )
                }
                if repush {
                    // The server was restored: everything we hold goes out again.
                    let everything = state.merging(applied)
                    let insert = try db.cachedStatement(sql: "INSERT INTO outbox (change, created_hlc) VALUES (?, ?)")
                    for chunk in everything.chunked(entitiesPerChange: 100) {
                        try insert.execute(arguments: [Data(chunk.encodedBlob()), finalClock.last.text])
                    }
                }
                try db.execute(
                    sql: "UPDATE sync_state SET session = ?, last_sync_ms = ? WHERE id = 1",
                    arguments: [try encodeJSON(session), Int64(wall)])
            }
        }
        state.mergeJoined(merged)
        self.session = session
        self.clock = finalClock
    }

    /// Re-bootstraps after the server refused the pull cursor as older than its retention: in ONE
    /// transaction, forgets every entity (their rows, CRDT state and derived conflicts) and
    /// restarts the pull from cursor 0, so what the server sends next is the whole truth and a
    /// record deleted while this replica was away does not live on here.
    ///
    /// Refuses while the outbox holds changes not yet pushed: they would be lost. Refused changes
    /// stay in the outbox with their reasons (the user's record of them); the audit trail stays.
    public func rebootstrap(wall: UInt64) throws(StoreError) {
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
                    "entity_state", "contacts", "contact_phones", "contact_emails", "contact_tags", "contact_fields",
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
