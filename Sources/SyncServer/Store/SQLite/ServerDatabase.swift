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
    func ensureLedger(_ tenant: String, _ db: Database, wall: UInt64) throws -> LedgerRow {
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
