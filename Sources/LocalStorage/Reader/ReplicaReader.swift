import CRDT
import Domain
import Foundation
import GRDB
import GRDBSQLite
import StoreSupport

/// Reads a replica's file: its query tables, and single entities decoded from their state
/// blobs — without loading the whole state.
///
/// ``LocalStore/open(in:options:)`` decodes every entity into memory, because commands validate
/// against the state and conflicts are derived from all of it: with 100,000 contacts
/// `replica-cli contact show` took 0.83 s and 248 MB to print one contact. The commands that only
/// read (show, list, notes, the schedule, history) open a reader instead: the same checks on
/// opening (integrity, schema), then only the rows and the entities they show (0.16 s, 36 MB). A
/// store has one too (``LocalStore/reader``), sharing the store's connection.
public struct ReplicaReader: Sendable {
    public let path: String
    let database: DatabaseQueue
    let settings: DomainSettings

    init(path: String, database: DatabaseQueue, settings: DomainSettings) {
        self.path = path
        self.database = database
        self.settings = settings
    }

    /// Opens the replica in `directory` for reading: checks its integrity, migrates an older
    /// schema and refuses a newer one, exactly as opening a store does.
    public static func open(
        in directory: String, options: StoreOptions = StoreOptions()
    ) throws(StoreError)
        -> ReplicaReader
    {
        let (path, database) = try LocalStore.openFile(in: directory, options: options)
        return ReplicaReader(path: path, database: database, settings: options.settings)
    }

    // MARK: Entities

    /// Above this many IDs, ``state(of:kinds:scanningAbove:)`` scans the kinds' rows instead of
    /// looking each ID up.
    public static let scanAbove = 2_000

    /// The entities among `ids` (of `kinds`) this file holds, decoded; a `TenantState` holding only
    /// them, so the Domain's views and lookups work on it as on the whole state.
    public func state(
        of ids: [EntityID], kinds: [EntityKind] = EntityKind.allCases, scanningAbove: Int = scanAbove
    ) throws(StoreError) -> TenantState {
        try wrap("reading \(path)") {
            try database.read { db in
                var rows = [SQLiteFile.EntityRow]()
                let kindList = kinds.map { "'\($0.rawValue)'" }.joined(separator: ", ")
                if ids.count > scanningAbove {
                    // Many entities (listing every contact): one pass over the kinds' rows in key
                    // order beats a lookup per entity (`contact list` of 100,000: 1.67 s by
                    // lookups, 1.53 s by a scan, 1.45 s loading the whole state).
                    let wanted = Set(ids)
                    try SQLiteFile.appendEntityRows(
                        db, sql: "SELECT kind, id, state FROM entity_state WHERE kind IN (\(kindList))",
                        arguments: [], to: &rows, path: path, recovery: LocalStore.recovery, keep: wanted.contains)
                    return try SQLiteFile.tenantState(rows, path: path, recovery: LocalStore.recovery)
                }
                // By the primary keys, in chunks well under SQLite's 32,766 parameters.
                for start in stride(from: 0, to: ids.count, by: 500) {
                    let chunk = ids[start..<min(ids.count, start + 500)]
                    try SQLiteFile.appendEntityRows(
                        db, sql: Self.stateLookupSQL(kinds: kinds, count: chunk.count),
                        arguments: StatementArguments(chunk.map(\.text)), to: &rows, path: path,
                        recovery: LocalStore.recovery)
                }
                return try SQLiteFile.tenantState(rows, path: path, recovery: LocalStore.recovery)
            }
        }
    }

    /// The states of `count` entities of `kinds`, by ID (`count` parameters). Through the
    /// `entity_state` view: SQLite looks each ID up in each kind's table by its primary key
    /// (`QueryPlanTests`).
    static func stateLookupSQL(kinds: [EntityKind], count: Int) -> String {
        """
        SELECT kind, id, state FROM entity_state
        WHERE kind IN (\(kinds.map { "'\($0.rawValue)'" }.joined(separator: ", "))) \
        AND id IN (\(Array(repeating: "?", count: count).joined(separator: ", ")))
        """
    }

    /// The states of one kind's entities whose IDs start with a prefix: (kind, prefix, prefix + "~").
    static let stateByPrefixSQL = "SELECT kind, id, state FROM entity_state WHERE kind = ? AND id >= ? AND id < ?"

    /// The contact, note or schedule entry whose ID is `text`, or starts with `text` (at least 6
    /// hex digits, matching exactly one existing entity of the kinds given): what the CLI accepts
    /// as an ID. The same answer as `TenantState.resolveID` on the whole state.
    public func resolveID(_ text: String, kinds: [EntityKind] = EntityKind.allCases) throws(StoreError) -> EntityID? {
        let text = text.lowercased()
        if let id = EntityID(text: text) { return try state(of: [id], kinds: kinds).resolveID(text, kinds: kinds) }
        guard text.count >= 6, text.allSatisfy(\.isHexDigit) else { return nil }
        // The IDs starting with `text` are a range of the key: every hex digit sorts before "~".
        // Each candidate is decoded to ask whether it exists; a second existing one ends the search.
        return try wrap("reading \(path)") {
            try database.read { db in
                var found: EntityID?
                for kind in kinds {
                    let cursor = try Row.fetchCursor(
                        db, sql: Self.stateByPrefixSQL,
                        arguments: [kind.rawValue, text, text + "~"])
                    while let row = try cursor.next() {
                        let idText: String = row[1]
                        guard let id = EntityID(text: idText) else {
                            throw StoreError(.corrupt, "\(path): bad entity ID \(idText); \(LocalStore.recovery)")
                        }
                        let one = try SQLiteFile.tenantState(
                            [(row[0], id, row[2])], path: path, recovery: LocalStore.recovery)
                        guard one.kind(of: id) != nil else { continue }
                        if found != nil { return nil }
                        found = id
                    }
                }
                return found
            }
        }
    }

    /// The schedule entries whose rows overlap [from, to), planned or not (with `assignee` among
    /// theirs when given), as a state of those entries only: the CLI lists them with
    /// `TenantState.scheduleViews`, which orders them and applies the same filter exactly.
    public func scheduleState(
        from: Int64 = .min, to: Int64 = .max, assignee: String? = nil
    ) throws(StoreError)
        -> TenantState
    {
        var sql = "SELECT id FROM schedule_entries WHERE start_ms < ? AND end_ms > ?"
        var arguments: StatementArguments = [to, from]
        if let assignee {
            sql += " AND id IN (SELECT entry_id FROM schedule_assignees WHERE assignee = ?)"
            _ = arguments.append(contentsOf: [assignee])
        }
        let ids = try wrap("querying \(path)") {
            try database.read { db in try String.fetchAll(db, sql: sql, arguments: arguments) }
        }
        return try state(of: ids.compactMap(EntityID.init(text:)), kinds: [.schedule])
    }

    // MARK: Query tables

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
            _ = arguments.append(contentsOf: ["%" + escapeLike(SearchFold.fold(search)) + "%"])
            if let phone = try? PhoneNumber.normalize(search, defaultCountry: settings.defaultCountry) {
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
        return try wrap("querying \(path)") {
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
        try wrap("querying \(path)") {
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
        return try wrap("querying \(path)") {
            try database.read { db in
                try Row.fetchAll(db, sql: sql, arguments: arguments).map { row in
                    ScheduleRow(
                        id: row["entry_id"], assignee: row["assignee"], title: row["title"], start: row["start_ms"],
                        end: row["end_ms"], status: row["status"])
                }
            }
        }
    }

    /// An entity's audit rows, by kind and ID: the first two columns of the trail's key (schema 6;
    /// until then of the index `audit_by_entity`). On the ID alone SQLite scanned the whole trail
    /// (100,000 rows and more after an initial sync).
    static let historySQL =
        "SELECT at_hlc, user, device, action FROM audit WHERE entity_kind = ? AND entity_id = ? ORDER BY seq"

    /// The audit trail of entity `id` on this replica, with who wrote its current values.
    public func history(of id: EntityID) throws(StoreError) -> EntityHistory? {
        let state = try state(of: [id])
        guard let kind = state.kind(of: id) else { return nil }
        let changes: [HistoryEntry] = try wrap("reading the audit trail of \(path)") {
            try database.read { db in
                try Row.fetchAll(
                    db, sql: Self.historySQL, arguments: [kind.rawValue, id.text]
                ).map { row in
                    let stamp = HLC(text: row["at_hlc"] as String)
                    return HistoryEntry(
                        at: TimeText.utc(Int64(stamp?.physical ?? 0)), user: row["user"], device: row["device"],
                        action: row["action"])
                }
            }
        }
        // Every field the entity lists (`Entity.fields`), so a field added to an entity is in its
        // history without a second list to keep (a hand-written list here left
        // out a note's author, a contact's "not a duplicate of" and the acceptances).
        func written<E: Entity>(_ entity: E) -> ([FieldEvent], (ReplicaID) -> String) {
            (entity.liveFieldEvents, entity.user(of:))
        }
        let (events, user) =
            switch kind {
            case .contact: written(state.contacts[id]!)
            case .note: written(state.notes[id]!)
            case .schedule: written(state.schedule[id]!)
            }
        let fields = events.sorted { ($0.stamp, $0.field) < ($1.stamp, $1.field) }.map { event in
            FieldAuthorship(
                field: event.field, value: event.value, user: user(event.stamp.replica),
                device: event.stamp.replica.hex,
                at: TimeText.utc(Int64(event.stamp.physical)))
        }
        return EntityHistory(id: id.text, kind: kind.rawValue, changes: changes, fields: fields)
    }

    func wrap<T>(_ doing: String, _ body: () throws -> T) throws(StoreError) -> T {
        try SQLiteFile.wrap(doing, recovery: LocalStore.recovery, body)
    }
}

private func escapeLike(_ text: String) -> String {
    text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "%", with: "\\%").replacingOccurrences(
        of: "_", with: "\\_")
}
