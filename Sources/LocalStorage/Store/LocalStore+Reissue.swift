import CRDT
import Domain
import Foundation
import GRDB
import StoreSupport

/// The changes the server refused to one replica, read from its file without changing it.
///
/// Used from a fresh replica to re-issue the work of an old one whose changes can never be
/// accepted (its clock ran a year ahead and its HLC never goes back; an edit of a record
/// collected on the server). The old file is opened read-only and not migrated.
public struct RefusedChanges: Sendable {
    /// One refused outbox entry: the change as the old replica wrote it, and the server's reason.
    public struct Change: Sendable {
        public let localSequence: UInt64
        public let code: String
        public let reason: String
        public let change: TenantState
    }

    public let directory: String
    public let identity: ReplicaIdentity
    public let changes: [Change]

    /// Reads the refused changes of the replica in `directory`, oldest first.
    ///
    /// - Throws: ``ReissueError`` (`not-a-replica`) when `directory` holds no replica store, or
    ///   ``StoreError`` when the store cannot be read.
    public static func read(from directory: String) throws -> RefusedChanges {
        let path = (directory as NSString).appendingPathComponent(LocalStore.fileName)
        guard FileManager.default.fileExists(atPath: path) else { throw ReissueError.notAReplica(directory) }
        let database: DatabaseQueue
        do {
            database = try SQLiteFile.openReadOnly(path)
        } catch {
            throw ReissueError.notAReplica(directory, underlying: error)
        }
        defer { try? database.close() }
        // `nil` when the file is a database but not a replica store (thrown outside: `wrap` would
        // turn the error into a store failure).
        let read = try SQLiteFile.wrap("reading the refused changes of \(path)", recovery: LocalStore.recovery) {
            try database.read { db -> RefusedChanges? in
                // Only a file from a newer build could lay out its outbox differently.
                let version = try Int.fetchOne(db, sql: "PRAGMA user_version") ?? 0
                guard version <= schemaMigrations.count else {
                    throw StoreError(
                        .newerSchema, "\(path) was written by a newer Kraliki Sync; read it with that build")
                }
                guard try db.tableExists("store_meta"), try db.tableExists("outbox") else { return nil }
                var meta = [String: String]()
                for row in try Row.fetchAll(db, sql: "SELECT key, value FROM store_meta") {
                    meta[row["key"]] = row["value"]
                }
                guard let hex = meta["replica_id"], let replica = ReplicaID(hex: hex), let user = meta["user"],
                    let tenant = meta["tenant"]
                else { return nil }
                let rows = try Row.fetchAll(
                    db,
                    sql: """
                        SELECT local_seq, change, rejected_code, rejected_reason FROM outbox
                        WHERE rejected_code IS NOT NULL ORDER BY local_seq
                        """)
                let changes = try rows.map { row throws -> Change in
                    let sequence: Int64 = row["local_seq"]
                    do {
                        return Change(
                            localSequence: UInt64(sequence), code: row["rejected_code"], reason: row["rejected_reason"],
                            change: try TenantState(blob: row["change"] as Data))
                    } catch {
                        throw StoreError(.corrupt, "refused change \(sequence) in \(path) does not decode (\(error))")
                    }
                }
                return RefusedChanges(
                    directory: directory, identity: ReplicaIdentity(replica: replica, user: user, tenant: tenant),
                    changes: changes)
            }
        }
        guard let read else { throw ReissueError.notAReplica(directory) }
        return read
    }
}

/// Why refused changes cannot be re-issued from a directory. Nothing has changed when it is thrown.
public struct ReissueError: Error, CustomStringConvertible, Sendable {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Hashable, Sendable {
            case notAReplica = "not-a-replica"
            case sameReplica = "same-replica"
            case otherTenant = "other-tenant"
            case nothingRefused = "nothing-refused"
        }
        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// The directory holds no replica store.
        public static let notAReplica = Code(.notAReplica)
        /// The directory is this replica's own.
        public static let sameReplica = Code(.sameReplica)
        /// The old replica belongs to another tenant: its data must not cross over.
        public static let otherTenant = Code(.otherTenant)
        /// The old replica has no refused changes.
        public static let nothingRefused = Code(.nothingRefused)

        public var description: String { base.rawValue }
    }

    public let code: Code
    /// The `--from` directory.
    public let directory: String
    public let message: String
    /// For `other-tenant`, the old replica's tenant.
    public let detail: String
    public let underlying: (any Error)?

    init(
        _ code: Code, _ directory: String, _ message: String, detail: String = "", underlying: (any Error)? = nil
    ) {
        self.code = code
        self.directory = directory
        self.message = message
        self.detail = detail
        self.underlying = underlying
    }

    static func notAReplica(_ directory: String, underlying: (any Error)? = nil) -> ReissueError {
        ReissueError(.notAReplica, directory, "\(directory) holds no replica store", underlying: underlying)
    }

    public var description: String { underlying.map { "\(message) (\($0))" } ?? message }
}

/// What a re-issue did (or, with `dryRun`, would do).
public struct ReissueReport: Sendable, Encodable {
    /// One refused change of the old replica made again here.
    public struct Reissued: Sendable, Encodable {
        public let localSequence: UInt64
        public let code: String
        /// The commands run for it (each its own outbox entry here).
        public let commands: Int
        /// Old ID → new ID of the entities it created, by old ID.
        public let created: [Created]
        public let leftOut: [LeftOutChange]
    }

    public struct Created: Sendable, Encodable {
        public let kind: EntityKind
        public let old: EntityID
        public let new: EntityID
    }

    /// The old replica's ID.
    public let from: String
    public let dryRun: Bool
    public let reissued: [Reissued]
    /// Local sequences of refused changes an earlier run re-issued already (skipped).
    public let alreadyReissued: [UInt64]
    /// The commands run for all of them.
    public let commands: Int

    init(from: String, dryRun: Bool, reissued: [Reissued], alreadyReissued: [UInt64]) {
        self.from = from
        self.dryRun = dryRun
        self.reissued = reissued
        self.alreadyReissued = alreadyReissued
        commands = reissued.reduce(0) { $0 + $1.commands }
    }
}

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
