import CRDT
import Domain
import Foundation
import GRDB
import StoreSupport

/// The server's durable ledgers: the `TenantLedger` bookkeeping of every tenant (merged entity
/// state, per-tenant sequence, the sequence that last changed each field, the change log) in
/// one SQLite file, WAL, `synchronous=FULL`.
///
/// `receive(_:wall:)` applies a GROUP of push batches (of any tenants) in ONE transaction and
/// returns their acknowledgements only after the commit is durable — the HTTP layer gathers
/// concurrent pushes into one group so durability costs one fsync per group, not per request;
/// `respond(to:tenant:wall:)` answers a pull from the log on a reader connection, so pulls never
/// queue behind pushes. Behaviour is the same as `TenantLedger` (a differential test checks it).
///
/// Thread-safe: a GRDB `DatabasePool` (one writer, concurrent WAL readers).
public final class ServerDatabase: Sendable {
    public static let fileName = "server.sqlite"

    public let path: String
    public let maxForwardDrift: UInt64
    public let maxPullChanges: Int
    /// See `ServerConfig.Limits.maxUnenrolledReplicas`.
    public let maxUnenrolledReplicas: Int
    let database: DatabasePool

    private init(
        path: String, database: DatabasePool, maxForwardDrift: UInt64, maxPullChanges: Int, maxUnenrolledReplicas: Int
    ) {
        self.path = path
        self.database = database
        self.maxForwardDrift = maxForwardDrift
        self.maxPullChanges = maxPullChanges
        self.maxUnenrolledReplicas = maxUnenrolledReplicas
    }

    /// Opens (or creates) the server store in `directory`.
    public static func open(
        in directory: String, maxForwardDrift: UInt64 = HybridLogicalClock.defaultMaxForwardDrift,
        maxPullChanges: Int = 1_000, maxUnenrolledReplicas: Int = 64, readOnly: Bool = false
    )
        throws(StoreError) -> ServerDatabase
    {
        let path = (directory as NSString).appendingPathComponent(fileName)
        do {
            try PrivateFile.createDirectory(directory)
            if !FileManager.default.fileExists(atPath: path) { try PrivateFile.create(path) }
            var configuration = Configuration()
            configuration.journalMode = .wal
            configuration.busyMode = .timeout(10)
            configuration.maximumReaderCount = 4
            configuration.prepareDatabase { db in
                try db.execute(sql: "PRAGMA synchronous = FULL")
                try db.execute(sql: "PRAGMA foreign_keys = ON")
            }
            let database = try DatabasePool(path: path, configuration: configuration)
            // GRDB's WAL setup runs AFTER prepareDatabase and sets synchronous = NORMAL, which in
            // WAL mode fsyncs only at checkpoints: a push would be acknowledged while its commit
            // sat in the page cache, and a power cut would lose it (issue #7's power-loss drill
            // found exactly this). FULL again, on the writer — the only connection that commits.
            try database.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA synchronous = FULL") }
            try SQLiteFile.migrate(database, migrations: serverSchemaMigrations, path: path, upgrade: "sync-server")
            return ServerDatabase(
                path: path, database: database, maxForwardDrift: maxForwardDrift, maxPullChanges: maxPullChanges,
                maxUnenrolledReplicas: maxUnenrolledReplicas)
        } catch let error as StoreError {
            throw error
        } catch {
            throw StoreError(.io, "cannot open the server store \(path)", underlying: error)
        }
    }

    // MARK: Ledger rows

    struct LedgerRow {
        var epoch: ServerEpoch
        var sequence: UInt64
        /// The highest sequence of a collected tombstone (see ServerDatabase+Retention.swift).
        var collectedThrough: UInt64 = 0
        /// Other devices' writes stamped before this (ms) may come back from replicas: the
        /// epoch's start (plus the drift bound after a restore); 0 accepts none.
        var othersWritesBefore: UInt64 = 0
    }

    func ledger(_ tenant: String, _ db: Database) throws -> LedgerRow? {
        guard
            let row = try Row.fetchOne(
                db.cachedStatement(
                    sql:
                        "SELECT epoch, sequence, collected_through, others_writes_before_ms FROM tenant_ledger WHERE tenant = ?"
                ),
                arguments: [tenant])
        else { return nil }
        let epoch: String = row[0]
        let sequence: Int64 = row[1]
        let collected: Int64 = row[2]
        let othersBefore: Int64 = row[3]
        return LedgerRow(
            epoch: ServerEpoch(rawValue: UInt64(epoch, radix: 16) ?? 0), sequence: UInt64(sequence),
            collectedThrough: UInt64(collected), othersWritesBefore: UInt64(max(0, othersBefore)))
    }

    /// The tenant's ledger, created with a new epoch beginning at `wall` when there is none.
    /// Writes older than that are the only other devices' writes a device may push: a server
    /// replacing a lost one gets everything back from replicas, some of it from others.
    private func ensureLedger(_ tenant: String, _ db: Database, wall: UInt64) throws -> LedgerRow {
        if let row = try ledger(tenant, db) { return row }
        var generator = SystemRandomNumberGenerator()
        let row = LedgerRow(epoch: ServerEpoch.random(using: &generator), sequence: 0, othersWritesBefore: wall)
        try db.execute(
            sql: "INSERT INTO tenant_ledger (tenant, epoch, sequence, others_writes_before_ms) VALUES (?, ?, 0, ?)",
            arguments: [tenant, row.epoch.description, Int64(wall)])
        return row
    }

    /// The tenant's epoch (created on first use).
    public func epoch(of tenant: String) throws(StoreError) -> ServerEpoch {
        try wrap {
            if let row = try database.read({ db in try ledger(tenant, db) }) { return row.epoch }
            let now = UInt64(max(0, Date().timeIntervalSince1970 * 1000))
            return try database.write { db in try ensureLedger(tenant, db, wall: now).epoch }
        }
    }

    /// The tenant's epoch and last sequence, if it has a ledger (read only).
    public func head(of tenant: String) throws(PullFailure) -> (epoch: ServerEpoch, sequence: UInt64)? {
        do {
            return try wrap { try database.read { db in try ledger(tenant, db).map { ($0.epoch, $0.sequence) } } }
        } catch {
            throw .store(error)
        }
    }

    /// Every tenant's ledger head.
    public func ledgerHeads() throws(StoreError) -> [LedgerHead] {
        try wrap {
            try database.read { db in
                try Row.fetchAll(db, sql: "SELECT tenant FROM tenant_ledger ORDER BY tenant").compactMap { row in
                    let tenant: String = row[0]
                    return try ledger(tenant, db).map {
                        LedgerHead(
                            tenant: tenant, epoch: $0.epoch, sequence: $0.sequence,
                            collectedThrough: $0.collectedThrough)
                    }
                }
            }
        }
    }

    /// One tenant's ledger head, if it has a ledger.
    public func ledgerHead(of tenant: String) throws(StoreError) -> LedgerHead? {
        try wrap {
            try database.read { db in
                try ledger(tenant, db).map {
                    LedgerHead(
                        tenant: tenant, epoch: $0.epoch, sequence: $0.sequence, collectedThrough: $0.collectedThrough)
                }
            }
        }
    }

    /// The last sequence number given in the tenant's ledger.
    public func sequence(of tenant: String) throws(StoreError) -> UInt64 {
        try wrap { try database.read { db in try ledger(tenant, db)?.sequence ?? 0 } }
    }

    // MARK: Push

    /// Applies `batch` for `tenant` in one durable transaction and returns the acknowledgement.
    /// A change stamped beyond the drift bound is refused alone, with a reason.
    public func receive(_ batch: PushBatch, tenant: String, wall: UInt64) throws(StoreError) -> PushAck {
        try receive([TenantPush(batch: batch, tenant: tenant)], wall: wall)[0].ack
    }

    /// Applies every push of `group` in ONE durable transaction (in order) and returns their
    /// receipts, in the same order, after the commit.
    public func receive(_ group: [TenantPush], wall: UInt64) throws(StoreError) -> [PushReceipt] {
        try wrap {
            try database.write { db in
                try group.map { push in
                    let ack = try receive(push, wall: wall, db)
                    if let device = push.device {
                        try db.cachedStatement(
                            sql: "UPDATE device SET last_push_ms = ?, last_seen_ms = ? WHERE id = ?"
                        ).execute(arguments: [Int64(wall), Int64(wall), device])
                    }
                    return PushReceipt(ack: ack, sequence: try ledger(push.tenant, db)?.sequence ?? 0)
                }
            }
        }
    }

    private func receive(_ push: TenantPush, wall: UInt64, _ db: Database) throws -> PushAck {
        let (batch, tenant) = (push.batch, push.tenant)
        let clock = HybridLogicalClock(replica: ReplicaID(0), maxForwardDrift: maxForwardDrift)
        var ledger = try ensureLedger(tenant, db, wall: wall)
        var rejected = [Rejection]()
        var replicas = TenantReplicas()
        for (index, (change, newest)) in zip(batch.changes, push.newestStamps).enumerated() {
            if let newest {
                do throws(ClockError) {
                    try clock.check(newest, wall: wall)
                } catch {
                    rejected.append(
                        Rejection(
                            localSequence: change.localSequence, code: error.code.description,
                            reason: error.message))
                    continue
                }
            }
            var collected = [EntityRef]()
            // A change that has seen other devices' stamps (an edit of a colleague's record) is
            // checked entity by entity against what is stored, before anything of it is written.
            var ownership = push.author.map { author in
                OwnershipCheck(
                    author: author, othersWritesBefore: ledger.othersWritesBefore,
                    mayHoldForeignStamps: push.mayHoldForeignWrites[index])
            }
            let contacts = try prepare(change.change.contacts, tenant, ledger, &collected, &ownership, db)
            let notes = try prepare(change.change.notes, tenant, ledger, &collected, &ownership, db)
            let schedule = try prepare(change.change.schedule, tenant, ledger, &collected, &ownership, db)
            if let ownership, let refusing = ownership.refusing {
                rejected.append(Self.foreignWriteRejection(change, refusing, by: ownership.author))
                continue
            }
            // After the ownership check, which names a forged write more precisely.
            if let author = push.author, let census = push.censuses[index] {
                var refusal = try replicaRefusal(census, by: author, tenant, ledger, &replicas, db)
                if refusal == nil, replicas.namesUnenrolled {
                    // Each push may name a few replicas a restore forgot; what is stored after
                    // the merge must hold no more of them than one push may name, or pushes
                    // would add a few more each time.
                    refusal =
                        try mergedRefusal(contacts, author, tenant, &replicas, db)
                        ?? mergedRefusal(notes, author, tenant, &replicas, db)
                        ?? mergedRefusal(schedule, author, tenant, &replicas, db)
                }
                if let refusal {
                    rejected.append(
                        Rejection(localSequence: change.localSequence, code: refusal.code, reason: refusal.reason))
                    continue
                }
            }
            try write(contacts, tenant, &ledger, db)
            try write(notes, tenant, &ledger, db)
            try write(schedule, tenant, &ledger, db)
            if let ownership, let first = ownership.allowed.first {
                // Rare (a re-push after a restore or a rejoin) and worth knowing: who sent
                // whose writes.
                try Self.audit(
                    db, wall: wall, tenant: tenant, actor: ownership.author.device.hex, action: "push-others-writes",
                    detail: [
                        "writes": "\(ownership.allowed.count)",
                        "devices": Set(ownership.allowed.map(\.stamp.replica.hex)).sorted().joined(separator: ","),
                        "first": "\(first.kind.rawValue) \(first.id.text) \(first.field)",
                    ])
            }
            if !collected.isEmpty {
                rejected.append(Self.collectedRejection(change.localSequence, collected))
            }
        }
        try db.cachedStatement(sql: "UPDATE tenant_ledger SET sequence = ? WHERE tenant = ?")
            .execute(arguments: [Int64(ledger.sequence), tenant])
        return PushAck(
            epoch: ledger.epoch, processedThrough: batch.changes.map(\.localSequence).max() ?? 0,
            rejected: rejected,
            serverTime: wall)
    }

    /// What a pushed change holds that its pusher did not write (see ``ForeignWrite``): the
    /// first write that refuses it, or the other devices' writes it may carry — those stamped
    /// before the ledger's `othersWritesBefore`, which a replica sends back after a restore (or a
    /// rejoin) lost them.
    struct OwnershipCheck {
        let author: Author
        let othersWritesBefore: UInt64
        /// From the request thread's scan: false proves no entity of the change holds another
        /// replica's stamp or author record (a new record's ID is checked regardless).
        let mayHoldForeignStamps: Bool
        private(set) var refusing: ForeignWrite?
        private(set) var allowed: [ForeignWrite] = []

        init(author: Author, othersWritesBefore: UInt64, mayHoldForeignStamps: Bool) {
            self.author = author
            self.othersWritesBefore = othersWritesBefore
            self.mayHoldForeignStamps = mayHoldForeignStamps
        }

        /// Whether an entity must be compared: a record new to the server under another
        /// device's ID (its creation claimed for that device), or one that has seen other
        /// replicas' stamps.
        func mustCheck<E: Entity>(_ id: EntityID, _ delta: E, isNew: Bool) -> Bool {
            (isNew && id.replica != author.device)
                || (mayHoldForeignStamps && delta.mayHoldForeignWrites(by: author))
        }

        /// Takes the foreign writes of one entity; false when one of them refuses the change.
        mutating func admit(_ writes: [ForeignWrite]) -> Bool {
            for write in writes {
                // The device's own stamp on a foreign write (an author record for another device
                // or naming another user) is never something a restore lost.
                guard write.stamp.replica != author.device, write.stamp.physical < othersWritesBefore else {
                    refusing = write
                    return false
                }
                allowed.append(write)
            }
            return true
        }
    }

    /// What a push's ingest learned of the tenant's enrolled replicas (looked up only for the
    /// replicas its changes name besides the pusher's own).
    struct TenantReplicas {
        var isEnrolled: [ReplicaID: Bool] = [:]
        var count: Int?
        /// The change being checked names a replica that is not enrolled (allowed: older than
        /// the epoch, and few).
        var namesUnenrolled = false

        /// Whether `replica` has a device row in `tenant` (revoked or not), looked up once.
        mutating func isEnrolled(_ replica: ReplicaID, _ tenant: String, _ db: Database) throws -> Bool {
            if let known = isEnrolled[replica] { return known }
            let enrolled =
                try Int.fetchOne(
                    db.cachedStatement(sql: "SELECT 1 FROM device WHERE id = ? AND tenant = ?"),
                    arguments: [replica.hex, tenant]) != nil
            isEnrolled[replica] = enrolled
            return enrolled
        }
    }

    /// `unknown-replica` when a merged entity would name more unenrolled replicas than
    /// `maxUnenrolledReplicas`.
    private func mergedRefusal<E: Entity>(
        _ prepared: [Prepared<E>], _ author: Author, _ tenant: String, _ replicas: inout TenantReplicas,
        _ db: Database
    ) throws -> (code: String, reason: String)? {
        for entity in prepared {
            var census = ReplicaCensus()
            entity.after.takeCensus(id: entity.id, &census)
            var unenrolled = 0
            for dot in census.replicas.entries where dot.replica != author.device {
                if try !replicas.isEnrolled(dot.replica, tenant, db) { unenrolled += 1 }
            }
            if unenrolled > maxUnenrolledReplicas {
                return (
                    "unknown-replica",
                    "\(E.kind.rawValue) \(entity.idText) would name \(unenrolled) replicas that are not enrolled in "
                        + "this tenant; at most \(maxUnenrolledReplicas) may come back from a restore"
                )
            }
        }
        return nil
    }

    /// Why a change is refused for the replicas it names (nil: it is not): one the tenant never
    /// enrolled, named with a stamp of this epoch (`unknown-replica`) — a forgery every other
    /// replica would pull and keep —, more unenrolled replicas than `maxUnenrolledReplicas`
    /// (those a restore forgot, with older stamps), or a kernel with more context entries or
    /// live events than the tenant's replicas can make (`oversized-context`).
    private func replicaRefusal(
        _ census: TenantPush.Census, by author: Author, _ tenant: String, _ ledger: LedgerRow,
        _ replicas: inout TenantReplicas, _ db: Database
    ) throws -> (code: String, reason: String)? {
        // Nearly every change names only its author's replica in small kernels: no lookup.
        replicas.namesUnenrolled = false
        let small = census.largestContext <= 8 && census.mostLiveEvents <= 8
        if small && census.named.entries.allSatisfy({ $0.replica == author.device }) { return nil }
        var unenrolled = 0
        for dot in census.named.entries where dot.replica != author.device {
            if try replicas.isEnrolled(dot.replica, tenant, db) { continue }
            replicas.namesUnenrolled = true
            // Counters are HLC times: milliseconds above 16 logical bits.
            let physical = dot.counter >> 16
            if physical >= ledger.othersWritesBefore {
                return (
                    "unknown-replica",
                    "the change names replica \(dot.replica.hex) (stamped \(TimeText.utc(Int64(physical)))), "
                        + "which was never enrolled in this tenant; a device may send only state made by the tenant's replicas"
                )
            }
            unenrolled += 1
            if unenrolled > maxUnenrolledReplicas {
                return (
                    "unknown-replica",
                    "the change names more than \(maxUnenrolledReplicas) replicas that are not enrolled in this tenant"
                )
            }
        }
        if small { return nil }
        if replicas.count == nil {
            replicas.count =
                try Int.fetchOne(
                    db.cachedStatement(sql: "SELECT COUNT(*) FROM device WHERE tenant = ?"), arguments: [tenant]) ?? 0
        }
        let bound = (replicas.count ?? 0) + maxUnenrolledReplicas
        if census.largestContext > bound || census.mostLiveEvents > bound {
            return (
                "oversized-context",
                "a value of the change records \(max(census.largestContext, census.mostLiveEvents)) replicas' writes; "
                    + "this tenant's replicas can make at most \(bound)"
            )
        }
        return nil
    }

    static func foreignWriteRejection(_ change: PushChange, _ write: ForeignWrite, by author: Author) -> Rejection {
        Rejection(
            localSequence: change.localSequence, code: "foreign-write",
            reason:
                "\(write.kind.rawValue) \(write.id.text) field \(write.field) carries a write stamped by device "
                + "\(write.stamp.replica.hex) at \(TimeText.utc(Int64(write.stamp.physical))), which this device "
                + "(\(author.device.hex), user \(author.user)) did not make; a device may send only its own writes, "
                + "and other devices' only when they predate the tenant's epoch (its first sync or last restore)")
    }

    /// One entity of a change, merged and ready to be written.
    struct Prepared<E: Entity> {
        let id: EntityID
        let idText: String
        let after: E
        let changed: FieldMask
        let sequences: [UInt64]
    }

    /// Merges `delta` into the stored entities, without writing anything yet: the entities it
    /// changes, each with the fields that changed. An entity whose tombstone was collected is not
    /// re-created: a delta that adds nothing to what it had seen is ignored (a retry, a re-push
    /// after a restore), one that carries new edits is left out and listed in `collected`, so the
    /// change is refused with a reason. With `ownership`, every entity that has seen other
    /// devices' stamps or is new under another device's ID is checked; at the first refusing
    /// write this stops (the change is refused whole, nothing of it written).
    private func prepare<E: Entity>(
        _ delta: ORMap<EntityID, E>, _ tenant: String, _ ledger: LedgerRow, _ collected: inout [EntityRef],
        _ ownership: inout OwnershipCheck?, _ db: Database
    ) throws -> [Prepared<E>] {
        var result = [Prepared<E>]()
        for id in delta.sortedKeys {
            if ownership?.refusing != nil { return [] }
            let entityDelta = delta[id]!
            let idText = id.text
            // Cached statements: preparing one per entity (and GRDB's authorizer callback on
            // every prepare) was a quarter of ingest CPU; run through the C API (SQLiteCalls.swift).
            let stored = try db.cachedStatement(sql: Self.selectEntity).firstRowBlobs(
                columns: 2, db, tenant, E.kind.rawValue, idText)
            if stored == nil, ledger.collectedThrough > 0 {
                if let knowledge = try collectedKnowledge(tenant, E.kind, idText, db) {
                    // Nothing new, or only another deletion of it: nothing to keep, nothing to say.
                    let adds = !knowledge.dominates(entityDelta.knowledge) && !entityDelta.isOnlyDeletion
                    if adds { collected.append(EntityRef(E.kind, id)) }
                    continue
                }
                // A new note or entry on a collected contact would point at nothing.
                if let contact = Self.contactReference(of: entityDelta),
                    try collectedKnowledge(tenant, .contact, contact.text, db) != nil
                {
                    collected.append(EntityRef(.contact, contact))
                    continue
                }
            }
            let sequences = try stored.map { blobs in try Self.decodeSequences(blobs[1]) } ?? []
            let after: E
            let changed: FieldMask
            var before: E?
            if let stored {
                let decoded = try decodeEntity(E.self, stored[0])
                after = decoded.merging(entityDelta)
                changed = E.changedFields(touchedBy: entityDelta, from: decoded, to: after)
                before = decoded
            } else {
                // A new entity: bottom ⊔ delta is the delta, and every field it holds changed
                // (the general path computes the same, at a merge and a comparison per field).
                after = entityDelta
                changed = entityDelta.presentFields
            }
            if changed.isEmpty { continue }
            if let check = ownership, check.mustCheck(id, entityDelta, isNew: before == nil),
                !ownership!.admit(E.foreignWrites(id: id, from: before, to: after, by: check.author, changed: changed))
            {
                return []
            }
            result.append(Prepared(id: id, idText: idText, after: after, changed: changed, sequences: sequences))
        }
        return result
    }

    /// Writes prepared entities, giving each the next sequence.
    private func write<E: Entity>(
        _ prepared: [Prepared<E>], _ tenant: String, _ ledger: inout LedgerRow, _ db: Database
    )
        throws
    {
        for entity in prepared {
            ledger.sequence += 1
            let sequence = ledger.sequence
            var sequences = entity.sequences
            if sequences.count < E.fields.count {
                sequences += Array(repeating: 0, count: E.fields.count - sequences.count)
            }
            for index in E.fields.indices where entity.changed.contains(.field(index)) { sequences[index] = sequence }
            try db.cachedStatement(
                sql: """
                    INSERT INTO server_entity (tenant, kind, id, state, field_sequences) VALUES (?, ?, ?, ?, ?)
                    ON CONFLICT (tenant, kind, id) DO UPDATE SET state = excluded.state, field_sequences = excluded.field_sequences
                    """
            ).run(db, tenant, E.kind.rawValue, entity.idText, entityBlob(entity.after), Self.encodeSequences(sequences))
            try db.cachedStatement(
                sql: "INSERT INTO server_log (tenant, sequence, kind, id, fields) VALUES (?, ?, ?, ?, ?)"
            ).run(
                db, tenant, Int64(sequence), E.kind.rawValue, entity.idText, Int64(bitPattern: entity.changed.rawValue))
        }
    }

    // MARK: Pull

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
    private func respondIfKnown(
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
    private func projection(
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

    /// The writer's `PRAGMA synchronous` (2 = FULL: every commit fsynced before it returns).
    public func synchronousLevel() throws(StoreError) -> Int {
        try wrap {
            try database.writeWithoutTransaction { db in try Int.fetchOne(db, sql: "PRAGMA synchronous") ?? -1 }
        }
    }

    /// `PRAGMA integrity_check` ("ok" when sound).
    public func integrityCheck() throws(StoreError) -> [String] {
        try wrap { try database.read { db in try String.fetchAll(db, sql: "PRAGMA integrity_check") } }
    }

    // MARK: Helpers

    static func encodeSequences(_ sequences: [UInt64]) -> Data {
        var writer = BinaryWriter(capacity: sequences.count * 3)
        for sequence in sequences { writer.writeVarint(sequence) }
        return Data(writer.bytes)
    }

    static func decodeSequences(_ data: Data) throws -> [UInt64] {
        var reader = BinaryReader(bytes: data)
        var result = [UInt64]()
        while !reader.isAtEnd { result.append(try reader.readVarint("a field sequence")) }
        return result
    }

    static let recovery = "restore the server from its last backup (a new epoch; replicas re-push what they hold)"

    func wrap<T>(_ body: () throws -> T) throws(StoreError) -> T {
        try SQLiteFile.wrap("using the server store \(path)", recovery: Self.recovery, body)
    }
}
