import CRDT
import Domain
import Foundation
import GRDB

/// What the replica's and the server's SQLite stores share: error wrapping, numbered
/// migrations counted by `PRAGMA user_version`, and decoding entity blobs into a `TenantState`.
public enum SQLiteFile {
    /// Runs `body`, turning SQLite's errors into ``StoreError``s: damage becomes `.corrupt` with
    /// `recovery` (what the user should do), anything else `.io`.
    public static func wrap<T>(_ doing: String, recovery: String, _ body: () throws -> T) throws(StoreError) -> T {
        do {
            return try body()
        } catch let error as StoreError {
            throw error
        } catch let error as DatabaseError
            where error.resultCode == .SQLITE_CORRUPT || error.resultCode == .SQLITE_NOTADB
        {
            throw StoreError(.corrupt, "the store is damaged while \(doing); \(recovery)", underlying: error)
        } catch {
            throw StoreError(.io, "failed while \(doing)", underlying: error)
        }
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
    public static func tenantState(
        _ db: Database, sql: String, arguments: StatementArguments = [], path: String, recovery: String
    ) throws -> TenantState {
        var contacts = [EntityID: Contact]()
        var notes = [EntityID: CallNote]()
        var schedule = [EntityID: ScheduleEntry]()
        let rows = try Row.fetchCursor(db, sql: sql, arguments: arguments)
        while let row = try rows.next() {
            let kind: String = row[0]
            let idText: String = row[1]
            let blob: Data = row[2]
            guard let id = EntityID(text: idText) else {
                throw StoreError(.corrupt, "\(path): bad entity ID \(idText); \(recovery)")
            }
            do throws(BinaryDecodingError) {
                switch kind {
                case EntityKind.contact.rawValue: contacts[id] = try decodeEntity(Contact.self, blob)
                case EntityKind.note.rawValue: notes[id] = try decodeEntity(CallNote.self, blob)
                case EntityKind.schedule.rawValue: schedule[id] = try decodeEntity(ScheduleEntry.self, blob)
                default: throw BinaryDecodingError(code: .wrongType, offset: 0, message: "unknown entity kind \(kind)")
                }
            } catch {
                throw StoreError(
                    .corrupt, "\(path): the state of \(kind) \(idText) does not decode (\(error)); \(recovery)")
            }
        }
        return TenantState(contacts: ORMap(contacts), notes: ORMap(notes), schedule: ORMap(schedule))
    }
}
