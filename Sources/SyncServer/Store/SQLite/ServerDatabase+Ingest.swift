import CRDT
import Domain
import Foundation
import GRDB
import StoreSupport

/// Ingest: a group of pushes applied in one write transaction, each change checked (drift,
/// foreign writes, the replicas it names) and merged entity by entity; acknowledgements are
/// returned only after the commit.
extension ServerDatabase {

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

    func receive(_ push: TenantPush, wall: UInt64, _ db: Database) throws -> PushAck {
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
    func mergedRefusal<E: Entity>(
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
    func replicaRefusal(
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
    func prepare<E: Entity>(
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
    func write<E: Entity>(
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
}
