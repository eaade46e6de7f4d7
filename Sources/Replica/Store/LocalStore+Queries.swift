import CRDT
import Domain
import Foundation
import GRDB
import GRDBSQLite

/// A contact as listed: its displayed values.
public struct ContactRow: Hashable, Sendable, Codable {
    public let id: String
    public let name: String
    public let company: String?
    public let owner: String?
    public let status: String?
    public let lifecycle: String
    public let hasConflict: Bool
}

/// A call note as listed.
public struct NoteRow: Hashable, Sendable, Codable {
    public let id: String
    public let contactID: String?
    public let author: String?
    public let callTime: Int64?
    public let outcome: String?
    public let body: String?
}

/// A schedule entry as listed, for one assignee.
public struct ScheduleRow: Hashable, Sendable, Codable {
    public let id: String
    public let assignee: String
    public let title: String?
    public let start: Int64
    public let end: Int64
    public let status: String?
}

extension LocalStore {
    /// Active contacts matching all the given filters, by name. `search` matches a part of the
    /// name (ignoring case and diacritics), or a whole phone number (any format) or e-mail address.
    public func contacts(
        search: String? = nil, tag: String? = nil, owner: String? = nil, includeDeleted: Bool = false
    )
        throws(StoreError) -> [ContactRow]
    {
        var conditions = [String]()
        var arguments = StatementArguments()
        if !includeDeleted { conditions.append("c.lifecycle = 'active'") }
        if let search, !search.isEmpty {
            // Case and diacritics do not matter: "novakova" finds "Nováková".
            var alternatives = ["search_fold(c.name) LIKE ? ESCAPE '\\'"]
            _ = arguments.append(contentsOf: ["%" + escapeLike(Self.fold(search)) + "%"])
            if let phone = try? PhoneNumber.normalize(search, defaultCountry: options.settings.defaultCountry) {
                alternatives.append("c.id IN (SELECT contact_id FROM contact_phones WHERE phone = ?)")
                _ = arguments.append(contentsOf: [phone])
            }
            if let email = try? EmailAddress.normalize(search) {
                alternatives.append("c.id IN (SELECT contact_id FROM contact_emails WHERE email = ?)")
                _ = arguments.append(contentsOf: [email])
            }
            conditions.append("(" + alternatives.joined(separator: " OR ") + ")")
        }
        if let tag {
            conditions.append("c.id IN (SELECT contact_id FROM contact_tags WHERE tag = ?)")
            _ = arguments.append(contentsOf: [tag])
        }
        if let owner {
            conditions.append("c.owner = ?")
            _ = arguments.append(contentsOf: [owner])
        }
        let sql = """
            SELECT id, name, company, owner, status, lifecycle, has_conflict FROM contacts c
            \(conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND "))
            ORDER BY name COLLATE NOCASE, id
            """
        return try Self.wrap("querying \(path)") {
            try database.read { db in
                // Columns read straight from SQLite's C API: through GRDB's row cursor, the
                // per-column conversions cost more than SQLite's scan of the listing index for
                // 100,000 contacts.
                let statement = try db.makeStatement(sql: sql)
                try statement.setArguments(arguments)
                let handle = statement.sqliteStatement
                defer { sqlite3_reset(handle) }
                func text(_ column: Int32) -> String? {
                    guard let bytes = sqlite3_column_text(handle, column) else { return nil }
                    let count = Int(sqlite3_column_bytes(handle, column))
                    return String(decoding: UnsafeBufferPointer(start: bytes, count: count), as: UTF8.self)
                }
                var result = [ContactRow]()
                while true {
                    let code = sqlite3_step(handle)
                    if code == SQLITE_DONE { return result }
                    guard code == SQLITE_ROW else { throw sqliteFailure(code, db, sql: sql) }
                    result.append(
                        ContactRow(
                            id: text(0) ?? "", name: text(1) ?? "", company: text(2), owner: text(3), status: text(4),
                            lifecycle: text(5) ?? "", hasConflict: sqlite3_column_int64(handle, 6) != 0))
                }
            }
        }
    }

    static let notesSQL = """
        SELECT id, contact_id, author, call_time, outcome, body FROM call_notes
        WHERE contact_id = ? AND lifecycle = 'active' ORDER BY call_time DESC, id
        """

    /// The active notes of a contact, newest call first.
    public func notes(of contact: EntityID) throws(StoreError) -> [NoteRow] {
        try Self.wrap("querying \(path)") {
            try database.read { db in
                try Row.fetchAll(db, sql: Self.notesSQL, arguments: [contact.text]).map { row in
                    NoteRow(
                        id: row["id"], contactID: row["contact_id"], author: row["author"], callTime: row["call_time"],
                        outcome: row["outcome"], body: row["body"])
                }
            }
        }
    }

    /// Active entries overlapping [from, to), for one assignee or all, by start time.
    public func schedule(assignee: String? = nil, from: Int64, to: Int64) throws(StoreError) -> [ScheduleRow] {
        var sql = """
            SELECT a.entry_id, a.assignee, e.title, a.start_ms, a.end_ms, e.status FROM schedule_assignees a
            JOIN schedule_entries e ON e.id = a.entry_id
            WHERE e.lifecycle = 'active' AND a.start_ms < ? AND a.end_ms > ?
            """
        var arguments: StatementArguments = [to, from]
        if let assignee {
            sql += " AND a.assignee = ?"
            _ = arguments.append(contentsOf: [assignee])
        }
        sql += " ORDER BY a.start_ms, a.entry_id, a.assignee"
        return try Self.wrap("querying \(path)") {
            try database.read { db in
                try Row.fetchAll(db, sql: sql, arguments: arguments).map { row in
                    ScheduleRow(
                        id: row["entry_id"], assignee: row["assignee"], title: row["title"], start: row["start_ms"],
                        end: row["end_ms"], status: row["status"])
                }
            }
        }
    }

    /// `PRAGMA integrity_check` ("ok" when sound).
    public func integrityCheck() throws(StoreError) -> [String] {
        try Self.wrap("checking \(path)") {
            try database.read { db in try String.fetchAll(db, sql: "PRAGMA integrity_check") }
        }
    }

    /// The size of the store on disk (database and WAL), bytes.
    public func sizeOnDisk() -> Int {
        [path, path + "-wal"].reduce(0) { total, file in
            total + ((try? FileManager.default.attributesOfItem(atPath: file)[.size] as? Int) ?? 0)
        }
    }
}

private func escapeLike(_ text: String) -> String {
    text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "%", with: "\\%").replacingOccurrences(
        of: "_", with: "\\_")
}
