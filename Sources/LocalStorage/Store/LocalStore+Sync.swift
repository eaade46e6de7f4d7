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

/// A store's state and clock as a sync step is prepared against them: a value, so the step can
/// be prepared on another thread while the store writes the previous one.
public struct CommitBase: Sendable {
    let state: TenantState
    /// The entities of steps prepared but not yet in `state`, the newest step first (the one
    /// being written, and the pulled batches already joined to the step after it).
    let newer: [TenantState]
    let clock: HybridLogicalClock
    /// Whether the step's pulled entities get audit rows (`StoreOptions.auditsPulls`).
    let auditsPulls: Bool

    /// This base with `step` — prepared against it, not yet in the store's memory — over it:
    /// what the step after `step` is prepared against.
    public func after(_ step: PreparedCommit) -> CommitBase {
        CommitBase(state: state, newer: [step.merged] + newer, clock: step.clock, auditsPulls: auditsPulls)
    }

    /// Everything a step needs but the writes: the pulled changes merged into one, merged with
    /// what the store holds, their encoded state, the clock after observing them, the session
    /// with its cursor advanced, encoded.
    public func prepare(
        session newSession: ReplicaSyncSession, actions: [ReplicaSyncSession.Action], wall: UInt64
    ) throws(StoreError) -> PreparedCommit {
        var session = newSession
        var clock = self.clock
        var applied = TenantState()
        var changes = [TenantState]()
        for action in actions {
            if case .apply(let change, let cursor) = action {
                applied.merge(change)
                session.didApplyPull(through: cursor)
                changes.append(change)
            }
        }
        // The pulled entities in ID order, each with the newest write it brings (its row's
        // `updated_hlc`, the clock below): found in one walk of each entity's fields.
        func sortedWithNewest<E: Entity>(_ deltas: ORMap<EntityID, E>) -> [(id: EntityID, delta: E, newest: Dot?)] {
            var sorted = [(id: EntityID, delta: E, newest: Dot?)]()
            sorted.reserveCapacity(deltas.count)
            for (id, delta) in deltas.valueByKey { sorted.append((id, delta, delta.newestDot)) }
            sorted.sort { $0.id < $1.id }
            return sorted
        }
        let pulledContacts = sortedWithNewest(applied.contacts)
        let pulledNotes = sortedWithNewest(applied.notes)
        let pulledSchedule = sortedWithNewest(applied.schedule)
        // Observe what we pulled so later local writes are stamped after it; a stamp beyond our
        // drift bound was accepted by the server, so trust the server's. Each batch's newest
        // stamp is observed in turn; one batch (a step's usual case) is `applied` itself, whose
        // newest stamp is the newest of its entities' (`TenantState.newestStamp` walked them
        // all once more).
        let clockWall = UInt64(max(0, Int64(wall) + session.clockOffset))
        if changes.count == 1 {
            var newest: Dot?
            func observe(_ dot: Dot?) {
                if let dot, newest.map({ dot.counter > $0.counter }) ?? true { newest = dot }
            }
            for row in pulledContacts { observe(row.newest) }
            for row in pulledNotes { observe(row.newest) }
            for row in pulledSchedule { observe(row.newest) }
            if let newest {
                _ = try? clock.receive(HLC(time: newest.counter, replica: newest.replica), wall: clockWall)
            }
        } else {
            for change in changes {
                if let newest = change.newestStamp { _ = try? clock.receive(newest, wall: clockWall) }
            }
        }
        // One pass over the pulled entities: each one merged with the entity as the store holds
        // it when this step is written (after the steps before it: one lookup), its writes and
        // its audit rows. (`TenantState.merged(with:over:)` does the merge alone; its own pass
        // looked every entity up once more, and this one once more in its result.)
        var writes = RowWrites()
        var audit = [PullAuditRow]()
        if auditsPulls { audit.reserveCapacity(applied.entityCount) }
        var devices = DeviceNames()
        let receivedAt = clock.last
        func prepareRows<E: RowEntity>(
            _ deltas: [(id: EntityID, delta: E, newest: Dot?)], newer: [ORMap<EntityID, E>],
            current: ORMap<EntityID, E>, plan: (inout RowWrites, E, E, PreparedRow) -> Void
        ) -> ORMap<EntityID, E> {
            var merged = [EntityID: E](minimumCapacity: deltas.count)
            // In ID order: each row's B-tree descent then starts where the last one ended (the
            // same pages, warm in the CPU's caches), and the audit rows, keyed by entity, go in
            // one after another (the trail's pages fill: 886 B per contact on disk, was 926).
            for (id, delta, newest) in deltas {
                let previous = TenantState.first(id, in: newer) ?? current[id]
                let entity = (previous ?? E()).merging(delta)
                merged[id] = entity
                let row = PreparedRow(
                    id, entity, delta: delta, newest: .some(newest), previous: previous, knowsPrevious: true)
                plan(&writes, entity, delta, row)
                if auditsPulls {
                    Self.pullAudit(
                        of: row, delta, before: previous ?? E(), after: entity, receivedAt: receivedAt,
                        devices: &devices, into: &audit)
                }
            }
            return ORMap(merged)
        }
        let merged = TenantState(
            contacts: prepareRows(pulledContacts, newer: newer.map(\.contacts), current: state.contacts) {
                $0.add($1, delta: $2, $3)
            },
            notes: prepareRows(pulledNotes, newer: newer.map(\.notes), current: state.notes) {
                $0.add($1, delta: $2, $3)
            },
            schedule: prepareRows(pulledSchedule, newer: newer.map(\.schedule), current: state.schedule) {
                $0.add($1, delta: $2, $3)
            })
        let finalSession = session
        let sessionJSON = try LocalStore.wrap("encoding the sync session") { try encodeJSON(finalSession) }
        // The pulled changes are in `merged` and `writes` now: the step does not keep them, so
        // they are freed here, on the thread that decoded them. (Kept, the writer freed them,
        // and each free of a block from this thread's heap waited for its lock while this side
        // allocated the next step: 2,200–2,800 lock waits per 100,000 pulled titles.)
        let kept = actions.filter {
            if case .apply = $0 { false } else { true }
        }
        return PreparedCommit(
            session: session, actions: kept, merged: merged, writes: writes,
            pullAudit: audit,
            clock: clock, sessionJSON: sessionJSON, wall: wall)
    }

    /// The audit rows of one pulled entity (`row` is its prepared row), appended to `rows`: one per person whose write
    /// this replica had not seen (``Entity/writers(of:unseenBy:)``), naming them — the device
    /// from the stamp, the user from the entity's authors — and the write's own time, not this
    /// replica, which only received it. A visible change carrying no unseen write (a set
    /// element's removal) is recorded as received, at `receivedAt`, from "(server)"; a change
    /// that changed nothing here (this replica's own edits coming back) gets no row.
    static func pullAudit<E: Entity>(
        of row: PreparedRow, _ delta: E, before: E, after entity: E, receivedAt: HLC, devices: inout DeviceNames,
        into rows: inout [PullAuditRow]
    ) {
        let writers = E.writers(of: delta, unseenBy: before)
        if writers.isEmpty {
            // Compared only here: a change with an unseen write changed something.
            if E.changedFields(touchedBy: delta, from: before, to: entity).isEmpty { return }
            rows.append(
                PullAuditRow(
                    at: receivedAt, user: "(server)", device: devices.name(of: receivedAt.replica),
                    kind: E.kind.rawValue,
                    id: row.id))
        }
        for dot in writers {
            rows.append(
                PullAuditRow(
                    at: HLC(time: dot.counter, replica: dot.replica), user: entity.user(of: dot.replica),
                    device: devices.name(of: dot.replica),
                    kind: E.kind.rawValue,
                    id: row.id))
        }
    }
}

/// The devices audit rows name (`ReplicaID.hex`), each spelled once per step: a pull's entities
/// were written by a few replicas, and a string per row was an allocation per pulled entity on
/// the preparing side and a free on the writer's.
struct DeviceNames {
    private var names: [ReplicaID: String] = [:]

    mutating func name(of replica: ReplicaID) -> String {
        if let name = names[replica] { return name }
        let name = replica.hex
        names[replica] = name
        return name
    }
}

/// One audit row of a pulled entity, computed ahead (``CommitBase/pullAudit(of:_:before:after:receivedAt:devices:into:)``).
/// The stamp and the ID are bound as their texts (`SQLiteParameter`) without making strings.
struct PullAuditRow: Sendable {
    let at: HLC
    let user: String
    let device: String
    let kind: String
    let id: EntityID
}

/// A sync step ready to be written (``LocalStore/write(_:)``) and then taken into memory
/// (``LocalStore/adopt(_:)``).
public struct PreparedCommit: Sendable {
    public private(set) var session: ReplicaSyncSession
    /// The session's actions but the pulled changes (`.apply`): those are in `merged` and `writes`.
    public private(set) var actions: [ReplicaSyncSession.Action]
    /// The entities the pulled changes touch, after the step.
    private(set) var merged: TenantState
    /// The statements that write them, planned (their encoded states, their columns, …).
    private(set) var writes: RowWrites
    /// The audit rows of the pulled entities (none when the store does not audit pulls).
    private(set) var pullAudit: [PullAuditRow]
    private(set) var clock: HybridLogicalClock
    private(set) var sessionJSON: String
    private(set) var wall: UInt64

    /// Joins `next` — the step prepared against ``CommitBase/after(_:)`` this one — to this step:
    /// one step again, written in ONE transaction, which ends where `next` ends (its session,
    /// cursor and clock). The sync engine writes pulled batches that arrived while it wrote the
    /// previous ones this way: SQLite's cost per commit (the fsync, the pages written again)
    /// is paid once for all of them.
    ///
    /// Mutates in place; `next.merged` must have been prepared over this step's `merged`, so its
    /// entities are taken as they are.
    public mutating func append(_ next: PreparedCommit) {
        actions.removeAll { $0 == .pullAgain }
        actions += next.actions
        merged.mergeJoined(next.merged)
        writes.append(contentsOf: next.writes)
        pullAudit += next.pullAudit
        session = next.session
        clock = next.clock
        sessionJSON = next.sessionJSON
        wall = next.wall
    }
}
