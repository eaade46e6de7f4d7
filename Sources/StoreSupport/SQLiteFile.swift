import CRDT
import Dispatch
import Domain
import Foundation
import GRDB
import Synchronization

/// What the replica's and the server's SQLite stores share: error wrapping, numbered
/// migrations counted by `PRAGMA user_version`, and decoding entity blobs into a `TenantState`.
public enum SQLiteFile {
    /// Runs `body`, turning SQLite's errors into ``StoreError``s: damage becomes `.corrupt` with
    /// `recovery` (what the user should do), no room on the disk `.diskFull`, anything else `.io`.
    public static func wrap<T>(_ doing: String, recovery: String, _ body: () throws -> T) throws(StoreError) -> T {
        do {
            return try body()
        } catch let error as StoreError {
            throw error
        } catch let error as DatabaseError
            where error.resultCode == .SQLITE_CORRUPT || error.resultCode == .SQLITE_NOTADB
        {
            throw StoreError(.corrupt, "the store is damaged while \(doing); \(recovery)", underlying: error)
        } catch  where isOutOfSpace(error) {
            throw StoreError(.diskFull, "the disk is full while \(doing)", underlying: error)
        } catch {
            throw StoreError(.io, "failed while \(doing)", underlying: error)
        }
    }

    /// Why SQLite could not open or write `path` when the file is not at fault: its file system
    /// is read-only, or this user may not write to its directory or to it. SQLite says only
    /// SQLITE_CANTOPEN or SQLITE_READONLY; the file system says which. Nil for other errors.
    public static func notWritable(_ error: any Error, path: String) -> StoreError? {
        guard let error = error as? DatabaseError,
            [.SQLITE_CANTOPEN, .SQLITE_READONLY, .SQLITE_PERM, .SQLITE_AUTH].contains(error.resultCode)
        else { return nil }
        let directory = (path as NSString).deletingLastPathComponent
        var stats = statvfs()
        let reason: String
        if statvfs(directory, &stats) == 0, stats.f_flag & UInt(ST_RDONLY) != 0 {
            reason = "the file system holding it is read-only"
        } else if access(directory, W_OK) != 0 {
            reason = "this user may not write to \(directory)"
        } else if access(path, F_OK) == 0 && access(path, W_OK) != 0 {
            reason = "this user may not write to \(path)"
        } else {
            return nil
        }
        return StoreError(.notWritable, "cannot open \(path) for writing: \(reason)", underlying: error)
    }

    /// SQLite found no room: SQLITE_FULL from a write (ENOSPC), or SQLITE_IOERR_SHMSIZE when even
    /// the WAL index (`-shm`, 32 KiB) cannot be created — on a disk with no free block at all,
    /// opening the file fails that way, which must not read as damage.
    public static func isOutOfSpace(_ error: any Error) -> Bool {
        guard let error = error as? DatabaseError else { return false }
        return error.resultCode == .SQLITE_FULL || error.extendedResultCode == .SQLITE_IOERR_SHMSIZE
    }

    /// `PRAGMA quick_check` (or, `thorough`, `integrity_check`) of the file at `path`, on a
    /// read-only connection — opening for writing in WAL mode can write to the file, and a
    /// damaged file must be left as it is. `["ok"]` when sound; throws when it is not a database.
    public static func check(_ path: String, thorough: Bool = false) throws -> [String] {
        let database = try openReadOnly(path)
        defer { try? database.close() }
        let pragma = thorough ? "integrity_check" : "quick_check"
        return try database.read { db in try String.fetchAll(db, sql: "PRAGMA \(pragma)") }
    }

    /// A connection that cannot write to the file at `path` (another replica's, a damaged one).
    public static func openReadOnly(_ path: String) throws -> DatabaseQueue {
        var configuration = Configuration()
        configuration.readonly = true
        return try DatabaseQueue(path: path, configuration: configuration)
    }

    /// fsyncs a file, or a directory after a rename in it.
    public static func fsync(_ path: String) throws(StoreError) {
        let descriptor = Glibc.open(path, O_RDONLY)
        guard descriptor >= 0 else { throw StoreError(.io, "cannot open \(path) to fsync it (errno \(errno))") }
        defer { Glibc.close(descriptor) }
        guard Glibc.fsync(descriptor) == 0 else { throw StoreError(.io, "fsync of \(path) failed (errno \(errno))") }
    }

    /// Applies the `migrations` the file lacks, each in its own transaction, up to `target`;
    /// refuses (and leaves untouched) a file written by a build that knows more migrations.
    /// `upgrade` says what to upgrade ("replica-cli").
    public static func migrate(
        _ database: some DatabaseWriter, migrations: [(name: String, sql: String)], path: String, upgrade: String,
        upTo target: Int? = nil
    ) throws(StoreError) {
        try wrap("migrating \(path)", recovery: "restore the file from a backup") {
            let version = try database.read { db in try Int.fetchOne(db, sql: "PRAGMA user_version") ?? 0 }
            if version > migrations.count {
                throw StoreError(
                    .newerSchema,
                    "\(path) was written by a newer version of Kraliki Sync (schema \(version); this build knows up to "
                        + "\(migrations.count)); upgrade \(upgrade) — the file is left untouched")
            }
            for index in version..<(target ?? migrations.count) {
                try database.write { db in
                    try db.execute(sql: migrations[index].sql)
                    try db.execute(sql: "PRAGMA user_version = \(index + 1)")
                }
            }
        }
    }

    /// Decodes the rows of `sql` — columns kind, id, state blob — into a `TenantState`.
    ///
    /// The rows are read on this thread, then decoded on every core in slices: decoding is most
    /// of the time it takes to open a large replica (0.57 s of 1.3 s for 110,000 contacts
    /// before; `perf`), and a replica that took a bootstrap image loads all of it at once.
    public static func tenantState(
        _ db: Database, sql: String, arguments: StatementArguments = [], path: String, recovery: String
    ) throws -> TenantState {
        var rows = [EntityRow]()
        try appendEntityRows(db, sql: sql, arguments: arguments, to: &rows, path: path, recovery: recovery)
        return try tenantState(rows, path: path, recovery: recovery)
    }

    /// An entity as stored: its kind's name, its ID and its state blob.
    package typealias EntityRow = (kind: String, id: EntityID, blob: Data)

    /// Reads the rows of `sql` — columns kind, id, state blob — without decoding them; only those
    /// whose ID `keep` accepts.
    package static func appendEntityRows(
        _ db: Database, sql: String, arguments: StatementArguments, to rows: inout [EntityRow], path: String,
        recovery: String, keep: (EntityID) -> Bool = { _ in true }
    ) throws {
        let cursor = try Row.fetchCursor(db, sql: sql, arguments: arguments)
        while let row = try cursor.next() {
            let idText: String = row[1]
            guard let id = EntityID(text: idText) else {
                throw StoreError(.corrupt, "\(path): bad entity ID \(idText); \(recovery)")
            }
            if keep(id) { rows.append((row[0], id, row[2])) }
        }
    }

    /// Decodes entity rows into a `TenantState`.
    package static func tenantState(_ rows: [EntityRow], path: String, recovery: String) throws -> TenantState {
        let slices = rows.count < 4_096 ? 1 : max(1, ProcessInfo.processInfo.activeProcessorCount)
        let all = rows
        let results = Mutex([DecodedSlice](repeating: DecodedSlice(), count: slices))
        DispatchQueue.concurrentPerform(iterations: slices) { slice in
            let range = (all.count * slice / slices)..<(all.count * (slice + 1) / slices)
            let done = DecodedSlice(all[range], path: path, recovery: recovery)
            results.withLock { $0[slice] = done }
        }
        let decoded = results.withLock { $0 }
        var contacts = [EntityID: Contact](minimumCapacity: decoded.reduce(0) { $0 + $1.contacts.count })
        var notes = [EntityID: CallNote](minimumCapacity: decoded.reduce(0) { $0 + $1.notes.count })
        var schedule = [EntityID: ScheduleEntry](minimumCapacity: decoded.reduce(0) { $0 + $1.schedule.count })
        for slice in decoded {
            if let failure = slice.failure { throw failure }
            for (id, contact) in slice.contacts { contacts[id] = contact }
            for (id, note) in slice.notes { notes[id] = note }
            for (id, entry) in slice.schedule { schedule[id] = entry }
        }
        return TenantState(contacts: ORMap(contacts), notes: ORMap(notes), schedule: ORMap(schedule))
    }

    /// The entities of one slice of rows, or the first that did not decode.
    private struct DecodedSlice: Sendable {
        var contacts = [(EntityID, Contact)]()
        var notes = [(EntityID, CallNote)]()
        var schedule = [(EntityID, ScheduleEntry)]()
        var failure: StoreError?

        init() {}

        init(_ rows: ArraySlice<EntityRow>, path: String, recovery: String) {
            contacts.reserveCapacity(rows.count)
            for (kind, id, blob) in rows {
                do throws(BinaryDecodingError) {
                    switch kind {
                    case EntityKind.contact.rawValue: contacts.append((id, try decodeEntity(Contact.self, blob)))
                    case EntityKind.note.rawValue: notes.append((id, try decodeEntity(CallNote.self, blob)))
                    case EntityKind.schedule.rawValue: schedule.append((id, try decodeEntity(ScheduleEntry.self, blob)))
                    default:
                        throw BinaryDecodingError(code: .wrongType, offset: 0, message: "unknown entity kind \(kind)")
                    }
                } catch {
                    failure = StoreError(
                        .corrupt, "\(path): the state of \(kind) \(id) does not decode (\(error)); \(recovery)")
                    return
                }
            }
        }
    }
}
