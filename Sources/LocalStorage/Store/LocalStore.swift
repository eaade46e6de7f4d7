import CRDT
import Domain
import Foundation
import GRDB
import StoreSupport

/// The replica's durable local store: one SQLite file (WAL) holding the CRDT state of every
/// entity, query tables derived from it, the outbox, the sync session and the audit trail.
///
/// Every local write is one transaction that updates the CRDT state, the query tables, the
/// outbox, the audit trail and the persisted clock together; every batch of pulled changes is
/// one transaction together with the cursor advance. A write returns only after its commit is
/// durable (with ``Durability/full``).
///
/// The whole ``TenantState`` is also kept in memory (about 1 KB per contact), because commands
/// validate against it and conflicts are derived from all of it. It is changed only after the
/// transaction that persists the change has committed.
///
/// Not thread-safe: use a store from one task at a time (the CLI and the sync engine do).
public final class LocalStore {
    public static let fileName = "replica.sqlite"

    public let path: String
    public let identity: ReplicaIdentity
    public let options: StoreOptions
    public internal(set) var state: TenantState
    public internal(set) var session: ReplicaSyncSession
    public internal(set) var clock: HybridLogicalClock
    public internal(set) var serverURL: String?
    /// Replaced only when the replica takes a bootstrap image (`adoptImage`).
    var database: DatabaseQueue
    /// `PRAGMA data_version` of this store's connection when it last read the file: it changes
    /// when another connection — another process — commits. Each write transaction compares it
    /// first (``requireCurrent(_:)``): the state in memory must be what the file holds, or a
    /// change computed from it would overwrite another process's rows and reuse its clock's
    /// stamps (two processes on one replica: `sync --watch` in one window, edits in another).
    var dataVersion: Int64

    private init(
        path: String, identity: ReplicaIdentity, options: StoreOptions, database: DatabaseQueue, state: TenantState,
        session: ReplicaSyncSession, clock: HybridLogicalClock, serverURL: String?, dataVersion: Int64
    ) {
        self.dataVersion = dataVersion
        self.path = path
        self.identity = identity
        self.options = options
        self.database = database
        self.state = state
        self.session = session
        self.clock = clock
        self.serverURL = serverURL
    }

    // MARK: Opening

    /// Creates a new replica store in `directory` (created if missing).
    public static func create(
        in directory: String, identity: ReplicaIdentity, serverURL: String? = nil,
        options: StoreOptions = StoreOptions()
    ) throws(StoreError) -> LocalStore {
        let path = (directory as NSString).appendingPathComponent(fileName)
        try StoreRepair.finishInterrupted(in: directory)
        if FileManager.default.fileExists(atPath: path) {
            throw StoreError(
                .alreadyInitialized,
                "there already is a replica in \(directory); use it, or choose another --data directory")
        }
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw StoreError(
                .io, "cannot create the directory \(directory)", underlying: error)
        }
        let database = try connect(path: path, options: options)
        try migrate(database, path: path)
        let session = ReplicaSyncSession(replica: identity.replica)
        try wrap("initializing \(path)") {
            try database.write { db in
                for (key, value) in [
                    ("replica_id", identity.replica.hex), ("user", identity.user), ("tenant", identity.tenant),
                    ("hlc_last", HLC(time: 0, replica: identity.replica).text),
                ] {
                    try db.execute(sql: "INSERT INTO store_meta (key, value) VALUES (?, ?)", arguments: [key, value])
                }
                try db.execute(
                    sql: "INSERT INTO sync_state (id, server_url, session) VALUES (1, ?, ?)",
                    arguments: [serverURL, try encodeJSON(session)])
            }
        }
        let version = try wrap("reading \(path)") { try database.read { db in try Self.dataVersion(db) } }
        return LocalStore(
            path: path, identity: identity, options: options, database: database, state: TenantState(),
            session: session,
            clock: HybridLogicalClock(replica: identity.replica), serverURL: serverURL, dataVersion: version)
    }

    /// Opens the replica store in `directory`: checks its integrity, migrates an older schema,
    /// refuses a newer one, and loads the state.
    public static func open(
        in directory: String, options: StoreOptions = StoreOptions()
    ) throws(StoreError) -> LocalStore {
        let (path, database) = try openFile(in: directory, options: options)
        let (contents, version) = try wrap("loading \(path)") {
            try database.read { db in (try loadContents(db, path: path), try Self.dataVersion(db)) }
        }
        let store = LocalStore(
            path: path, identity: contents.identity, options: options, database: database, state: contents.state,
            session: contents.session, clock: contents.clock, serverURL: contents.serverURL, dataVersion: version)
        try store.rebuildPlaceholderRows()
        return store
    }

    /// Rewrites whole, from their states, the rows the schema 5 migration made for states it
    /// found without a row (stand-in values, `updated_hlc` ''), and drops the migration's
    /// marker, in one transaction. Nothing to do unless the marker is there (looked for with a
    /// read, so opening a store takes no write lock).
    func rebuildPlaceholderRows() throws(StoreError) {
        let marker = "SELECT value FROM store_meta WHERE key = 'rows_to_rebuild'"
        try Self.wrap("migrating \(path)") {
            guard try database.read({ db in try String.fetchOne(db, sql: marker) }) != nil else { return }
            try database.write { db in
                guard try String.fetchOne(db, sql: marker) != nil else { return }  // another process did it
                let entities = try SQLiteFile.tenantState(
                    db,
                    sql: """
                        SELECT 'contact', id, state FROM contacts WHERE updated_hlc = ''
                        UNION ALL SELECT 'note', id, state FROM call_notes WHERE updated_hlc = ''
                        UNION ALL SELECT 'schedule', id, state FROM schedule_entries WHERE updated_hlc = ''
                        """, path: path, recovery: Self.recovery)
                try persistEntities(of: entities, in: entities, before: nil, RowWriter(db))
                try db.execute(sql: "DELETE FROM store_meta WHERE key = 'rows_to_rebuild'")
            }
        }
    }

    /// The replica file in `directory`, checked and migrated but not read: what opening a store
    /// and opening a ``ReplicaReader`` share. A repair stopped midway is finished first.
    static func openFile(in directory: String, options: StoreOptions) throws(StoreError) -> (String, DatabaseQueue) {
        let path = (directory as NSString).appendingPathComponent(fileName)
        try StoreRepair.finishInterrupted(in: directory)
        guard FileManager.default.fileExists(atPath: path) else {
            throw StoreError(.notInitialized, "there is no replica in \(directory); create one with `replica-cli init`")
        }
        // Check on a read-only connection first: opening for writing in WAL mode can write to
        // the file, and a damaged file must be left exactly as it is.
        try checkIntegrity(path: path)
        let database = try connect(path: path, options: options)
        try migrate(database, path: path)
        return (path, database)
    }

    /// Queries over this store's file: its query tables and single entities (``ReplicaReader``).
    public var reader: ReplicaReader { ReplicaReader(path: path, database: database, settings: options.settings) }

    static func dataVersion(_ db: Database) throws -> Int64 {
        try Int64.fetchOne(db.cachedStatement(sql: "PRAGMA data_version")) ?? 0
    }

    /// Throws `changedElsewhere` when another connection committed since this store read the
    /// file. Called first in a write transaction, which holds SQLite's write lock (GRDB begins
    /// write transactions IMMEDIATE): no other commit can slip in between the check and ours.
    func requireCurrent(_ db: Database) throws {
        guard try Self.dataVersion(db) == dataVersion else {
            throw StoreError(.changedElsewhere, "another process wrote to \(path) since this one read it")
        }
    }

    /// Copies the WAL into the database file and empties it, on this store's own connection.
    /// (A TRUNCATE or RESTART checkpoint by another connection changes `data_version` too: this
    /// store would take it for another process's commit and read the file again at its next
    /// write — correct, but a whole reload for nothing.)
    public func checkpoint() throws(StoreError) {
        try Self.wrap("checkpointing \(path)") {
            try database.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE)") }
        }
    }

    /// Reads the file again — session, clock, server and state — after another process wrote
    /// to it. Identity and options cannot change.
    public func reload() throws(StoreError) {
        let (contents, version) = try Self.wrap("loading \(path)") {
            try database.read { db in (try Self.loadContents(db, path: path), try Self.dataVersion(db)) }
        }
        state = contents.state
        session = contents.session
        clock = contents.clock
        serverURL = contents.serverURL
        dataVersion = version
    }

    /// What a store file holds: identity, sync session, clock, server and the whole state.
    struct Contents {
        let identity: ReplicaIdentity
        let session: ReplicaSyncSession
        let clock: HybridLogicalClock
        let serverURL: String?
        let state: TenantState
    }

    static func loadContents(_ db: Database, path: String) throws -> Contents {
        var meta = [String: String]()
        for row in try Row.fetchAll(db, sql: "SELECT key, value FROM store_meta") {
            meta[row["key"]] = row["value"]
        }
        guard let replicaHex = meta["replica_id"], let replica = ReplicaID(hex: replicaHex),
            let user = meta["user"],
            let tenant = meta["tenant"], let last = meta["hlc_last"].flatMap({ HLC(text: $0) })
        else { throw StoreError(.corrupt, "\(path) lacks its replica identity; \(recovery)") }
        let row = try Row.fetchOne(db, sql: "SELECT server_url, session FROM sync_state WHERE id = 1")
        guard let row, let sessionJSON: String = row["session"] else {
            throw StoreError(.corrupt, "\(path) lacks its sync state; \(recovery)")
        }
        return Contents(
            identity: ReplicaIdentity(replica: replica, user: user, tenant: tenant),
            session: try decodeJSON(ReplicaSyncSession.self, sessionJSON),
            clock: HybridLogicalClock(replica: replica, last: last), serverURL: row["server_url"],
            state: try loadState(db, path: path))
    }

    static let recovery =
        "run `replica-cli repair`: it keeps this replica's ID and its unpushed changes, moves the damaged file "
        + "aside and the next sync pulls the rest again (if even that fails: \(freshReplicaRecovery))"

    /// The last resort, when not even `repair` can read the file.
    static let freshReplicaRecovery =
        "move the file aside, create a fresh replica with `replica-cli init` (a new replica ID) and sync; "
        + "changes that were not pushed yet are in the old file's outbox table"

    static func connect(path: String, options: StoreOptions) throws(StoreError) -> DatabaseQueue {
        var configuration = Configuration()
        configuration.journalMode = .wal
        configuration.busyMode = .timeout(5)
        let synchronous = options.durability == .full ? "FULL" : "NORMAL"
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = \(synchronous)")
            // A 64 MiB page cache (SQLite's default is 2 MiB, allocated as pages are used): a
            // bulk import or a long pull dirties more pages than 2 MiB holds, and SQLite then
            // spills them to the WAL inside the transaction and reads them back, again and again.
            try db.execute(sql: "PRAGMA cache_size = -65536")
            try SearchFold.register(on: db)
        }
        do {
            let queue = try DatabaseQueue(path: path, configuration: configuration)
            // GRDB's WAL setup runs after prepareDatabase and sets synchronous = NORMAL: set the
            // chosen level again, or a "FULL" store would fsync only at checkpoints.
            try queue.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA synchronous = \(synchronous)") }
            return queue
        } catch let error as DatabaseError
            where error.resultCode == .SQLITE_NOTADB || error.resultCode == .SQLITE_CORRUPT
        {
            throw StoreError(.corrupt, "\(path) is not a readable replica database; \(recovery)", underlying: error)
        } catch {
            throw notDamaged(error, path: path) ?? StoreError(.io, "cannot open \(path)", underlying: error)
        }
    }

    /// An open-time failure that is no damage of the file: a full disk (SQLite cannot even create
    /// the 32 KiB WAL index), a read-only file system, no permission. These once all
    /// said "damaged, run repair" — wrong, and no help.
    static func notDamaged(_ error: any Error, path: String) -> StoreError? {
        if SQLiteFile.isOutOfSpace(error) {
            return StoreError(.diskFull, "the disk is full: cannot open \(path)", underlying: error)
        }
        return SQLiteFile.notWritable(error, path: path)
    }

    static func checkIntegrity(path: String) throws(StoreError) {
        let result: [String]
        do {
            result = try SQLiteFile.check(path)
        } catch let error as DatabaseError where error.resultCode == .SQLITE_READONLY {
            // A process killed mid-transaction in rollback-journal mode (taking a bootstrap
            // image switches the file to it and back) left a hot journal, or a WAL left needs
            // its index rebuilt: SQLite repairs either on the first connection that may write
            // (the read-only check cannot). That is its normal crash recovery, not damage, so
            // let it run, then check.
            do {
                try DatabaseQueue(path: path).close()
                result = try SQLiteFile.check(path)
            } catch {
                throw notDamaged(error, path: path)
                    ?? StoreError(.corrupt, "\(path) is damaged; \(recovery)", underlying: error)
            }
        } catch {
            throw notDamaged(error, path: path)
                ?? StoreError(.corrupt, "\(path) is damaged; \(recovery)", underlying: error)
        }
        guard result == ["ok"] else {
            throw StoreError(.corrupt, "\(path) is damaged (\(result.prefix(3).joined(separator: "; "))); \(recovery)")
        }
    }

    /// Applies the migrations this build knows that the file lacks (`PRAGMA user_version` counts
    /// those applied), each in its own transaction; refuses a file from a newer build.
    static func migrate(_ database: DatabaseQueue, path: String, upTo target: Int? = nil) throws(StoreError) {
        try SQLiteFile.migrate(
            database, migrations: schemaMigrations, path: path, upgrade: "replica-cli, or sync it from a newer build",
            upTo: target)
    }

    private static func loadState(_ db: Database, path: String) throws -> TenantState {
        try SQLiteFile.tenantState(db, sql: "SELECT kind, id, state FROM entity_state", path: path, recovery: recovery)
    }

    // MARK: Local writes

    /// The wall clock corrected by the server's offset hint, ms.
    /// The connection's `PRAGMA synchronous`: 2 = FULL (every commit fsynced before it
    /// returns), 1 = NORMAL (see `Durability`).
    public func synchronousLevel() throws(StoreError) -> Int {
        try Self.wrap("reading \(path)") {
            try database.writeWithoutTransaction { db in try Int.fetchOne(db, sql: "PRAGMA synchronous") ?? -1 }
        }
    }

    public func correctedTime(wall: UInt64) -> UInt64 {
        UInt64(max(0, Int64(wall) + session.clockOffset))
    }

    /// Runs a command and commits its change durably, together with the outbox entry, the
    /// audit trail and the clock. Returns the change. An invalid command changes nothing.
    @discardableResult
    public func write(
        wall: UInt64, _ command: (inout TenantState, WriteContext) throws(ValidationError) -> TenantState
    )
        throws(WriteError) -> TenantState
    {
        // Another process may have written since this store read the file: the transaction then
        // refuses (`requireCurrent`), the store reloads, and the command runs again on what the
        // file holds, with a stamp past that process's.
        var attempt = 1
        while true {
            do {
                return try writeOnce(wall: wall, command)
            } catch .storage(let error) where error.code == .changedElsewhere && attempt < 5 {
                attempt += 1  // `writeOnce` read the file again
            }
        }
    }

    private func writeOnce(
        wall: UInt64, _ command: (inout TenantState, WriteContext) throws(ValidationError) -> TenantState
    )
        throws(WriteError) -> TenantState
    {
        var clock = self.clock
        let stamp = clock.now(wall: correctedTime(wall: wall))
        let context = WriteContext(
            author: Author(user: identity.user, device: identity.replica), stamp: stamp, settings: options.settings)
        // Validation happens before any mutation, so a refusal leaves the state untouched.
        let delta: TenantState
        do { delta = try command(&state, context) } catch { throw .invalid(error) }
        if delta.isBottom { return delta }
        do {
            try Self.wrap("writing to \(path)") {
                try database.write { db in
                    try requireCurrent(db)
                    let writer = RowWriter(db)
                    try persistEntities(of: delta, in: state, before: nil, writer)
                    try db.execute(
                        sql: "INSERT INTO outbox (change, created_hlc) VALUES (?, ?)",
                        arguments: [Data(delta.encodedBlob()), stamp.text])
                    try audit(delta, stamp: stamp, user: identity.user, action: "write", writer)
                    try db.execute(
                        sql: "UPDATE store_meta SET value = ? WHERE key = 'hlc_last'", arguments: [stamp.text])
                }
            }
        } catch {
            // The commit failed: the in-memory state already holds the change, so reload it from
            // the file, which does not — all of it (session, clock) when another process wrote.
            if error.code != .changedElsewhere || (try? reload()) == nil { reloadAfterFailure() }
            throw .storage(error)
        }
        self.clock = clock
        return delta
    }

    private func reloadAfterFailure() {
        if let state = try? database.read({ db in try Self.loadState(db, path: path) }) { self.state = state }
    }
}

// MARK: - Helpers

func encodeJSON<T: Encodable>(_ value: T) throws -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = .sortedKeys
    return String(decoding: try encoder.encode(value), as: UTF8.self)
}

func decodeJSON<T: Decodable>(_ type: T.Type, _ text: String) throws -> T {
    try JSONDecoder().decode(type, from: Data(text.utf8))
}

extension LocalStore {
    static func wrap<T>(_ doing: String, _ body: () throws -> T) throws(StoreError) -> T {
        try SQLiteFile.wrap(doing, recovery: recovery, body)
    }
}
