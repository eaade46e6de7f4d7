import CRDT
import Domain
import Foundation
import GRDB
import GRDBSQLite
import StoreSupport

/// The statements that write entities and their query rows, each prepared at most once per
/// transaction and reused for every row: a `cachedStatement(sql:)` lookup hashes the whole SQL
/// text, and with nine statements per contact that showed in the import's profile. Parameters
/// are bound through SQLite's C API, without building `StatementArguments` (an array of boxed
/// values per row, another tenth of that profile). Statements run this way bypass GRDB's
/// transaction observers; nothing observes the store's database through GRDB.
final class RowWriter {
    enum SQL: Int, CaseIterable {
        case contact, contactUnlisted, note, noteUnlisted, scheduleEntry, scheduleEntryUnlisted, audit
        case deletePhone, insertPhone, deleteEmail, insertEmail, deleteTag, insertTag
        case deleteFields, insertField, deleteNoteTag, insertNoteTag, deleteAssignees, insertAssignee

        var text: String {
            switch self {
            case .contact:
                """
                INSERT INTO contacts
                    (id, name, company, title, owner, status, address, lifecycle, updated_hlc, has_conflict, state)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (id) DO UPDATE SET
                    name = excluded.name, company = excluded.company, title = excluded.title, owner = excluded.owner,
                    status = excluded.status, address = excluded.address, lifecycle = excluded.lifecycle,
                    updated_hlc = MAX(updated_hlc, excluded.updated_hlc), has_conflict = excluded.has_conflict,
                    state = excluded.state
                """
            // Only the columns no index holds: SQLite rewrites an index entry whenever a SET names
            // one of its columns, even with the value it had (5x slower per row, measured), and
            // the listing index's entries lie in name order, far from each other.
            case .contactUnlisted:
                "UPDATE contacts SET title = ?, address = ?, updated_hlc = MAX(updated_hlc, ?), state = ? WHERE id = ?"
            case .note:
                """
                INSERT INTO call_notes
                    (id, contact_id, author, call_time, duration, direction, outcome, body, lifecycle, updated_hlc, state)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (id) DO UPDATE SET
                    contact_id = excluded.contact_id, author = excluded.author, call_time = excluded.call_time,
                    duration = excluded.duration, direction = excluded.direction, outcome = excluded.outcome,
                    body = excluded.body, lifecycle = excluded.lifecycle, updated_hlc = MAX(updated_hlc, excluded.updated_hlc),
                    state = excluded.state
                """
            // A note whose contact and call time stay: its entry in call_notes_by_contact_time stays.
            case .noteUnlisted:
                """
                UPDATE call_notes SET
                    author = ?, duration = ?, direction = ?, outcome = ?, body = ?, lifecycle = ?,
                    updated_hlc = MAX(updated_hlc, ?), state = ?
                WHERE id = ?
                """
            case .scheduleEntry:
                """
                INSERT INTO schedule_entries
                    (id, kind, title, start_ms, end_ms, time_zone, contact_id, location, status, lifecycle, updated_hlc,
                     state)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (id) DO UPDATE SET
                    kind = excluded.kind, title = excluded.title, start_ms = excluded.start_ms, end_ms = excluded.end_ms,
                    time_zone = excluded.time_zone, contact_id = excluded.contact_id, location = excluded.location,
                    status = excluded.status, lifecycle = excluded.lifecycle,
                    updated_hlc = MAX(updated_hlc, excluded.updated_hlc), state = excluded.state
                """
            // An entry whose start stays: its entry in schedule_entries_by_start stays.
            case .scheduleEntryUnlisted:
                """
                UPDATE schedule_entries SET
                    kind = ?, title = ?, end_ms = ?, time_zone = ?, contact_id = ?, location = ?, status = ?,
                    lifecycle = ?, updated_hlc = MAX(updated_hlc, ?), state = ?
                WHERE id = ?
                """
            // The key first (schema 0006); `seq` from ``RowWriter/reserveAudit(_:)``.
            case .audit:
                "INSERT INTO audit (entity_kind, entity_id, seq, at_hlc, user, device, action) VALUES (?, ?, ?, ?, ?, ?, ?)"
            // Child rows by element, each statement on the table's primary key (schema 0004).
            case .deletePhone: "DELETE FROM contact_phones WHERE contact_id = ? AND phone = ?"
            case .insertPhone: "INSERT OR IGNORE INTO contact_phones (contact_id, phone) VALUES (?, ?)"
            case .deleteEmail: "DELETE FROM contact_emails WHERE contact_id = ? AND email = ?"
            case .insertEmail: "INSERT OR IGNORE INTO contact_emails (contact_id, email) VALUES (?, ?)"
            case .deleteTag: "DELETE FROM contact_tags WHERE contact_id = ? AND tag = ?"
            case .insertTag: "INSERT OR IGNORE INTO contact_tags (contact_id, tag) VALUES (?, ?)"
            case .deleteFields: "DELETE FROM contact_fields WHERE contact_id = ?"
            case .insertField: "INSERT INTO contact_fields (contact_id, key, value) VALUES (?, ?, ?)"
            case .deleteNoteTag: "DELETE FROM note_tags WHERE note_id = ? AND tag = ?"
            case .insertNoteTag: "INSERT OR IGNORE INTO note_tags (note_id, tag) VALUES (?, ?)"
            case .deleteAssignees: "DELETE FROM schedule_assignees WHERE entry_id = ?"
            case .insertAssignee:
                "INSERT INTO schedule_assignees (assignee, start_ms, entry_id, end_ms) VALUES (?, ?, ?, ?)"
            }
        }
    }

    let db: Database
    private var prepared = [Statement?](repeating: nil, count: SQL.allCases.count)

    init(_ db: Database) { self.db = db }

    /// Runs `sql` with `parameters`, which must be exactly its parameters, in order.
    func run<each P: SQLiteParameter>(_ sql: SQL, _ parameters: repeat each P) throws {
        let statement: Statement
        if let ready = prepared[sql.rawValue] {
            statement = ready
        } else {
            statement = try db.cachedStatement(sql: sql.text)
            prepared[sql.rawValue] = statement
        }
        try statement.run(db, repeat each parameters)
    }

    /// Reserves the numbers of `count` audit rows about to be written in this transaction, in
    /// one statement (the last number given out is kept in store_meta, schema 0006), and
    /// returns the first; 0 rows reserve nothing.
    func reserveAudit(_ count: Int) throws -> Int64 {
        guard count > 0 else { return 0 }
        // Cached: compiling the statement anew cost a single edit ~50 µs (a third of it at NORMAL).
        let reserve = try db.cachedStatement(
            sql: "UPDATE store_meta SET value = CAST(value AS INTEGER) + ? WHERE key = 'audit_seq' RETURNING value")
        let last = try Int64.fetchOne(reserve, arguments: [count])
        guard let last else {
            throw StoreError(
                .corrupt, "the audit trail's counter (store_meta 'audit_seq') is missing; \(LocalStore.recovery)")
        }
        return last - Int64(count) + 1
    }
}
