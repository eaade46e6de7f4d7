import CRDT
import Domain
import Foundation
import GRDB
import GRDBSQLite
import StoreSupport

// Writing an entity: its row, which holds its CRDT blob (schema 0005) beside the columns derived
// from its current (winning) values, and its child rows, kept in step element by element.

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

/// The statements that write some entities, each with its values: planned from the entities and
/// run by a ``RowWriter``, which then only binds and steps them. A pulled step plans its writes
/// where it is prepared (`CommitBase.prepare`) and the import on its builder's thread, so the
/// writer — the critical path of both — reads no entity, looks nothing up and builds no value:
/// in a profile that was a quarter of the title apply's writer (0.28 s per 100,000).
///
/// Steps joined into one transaction concatenate their writes: an entity two of them touch is
/// written twice, the second time over the first, each as it was planned over the step before.
struct RowWrites: Sendable {
    private var statements: [@Sendable (RowWriter) throws -> Void] = []

    /// Plans `sql` with `parameters`, which must be exactly its parameters, in order.
    mutating func add<each P: SQLiteParameter & Sendable>(_ sql: RowWriter.SQL, _ parameters: repeat each P) {
        statements.append { writer in try writer.run(sql, repeat each parameters) }
    }

    /// `other`'s statements after these.
    mutating func append(contentsOf other: RowWrites) { statements += other.statements }

    /// Runs the statements in order.
    func run(_ writer: RowWriter) throws {
        for statement in statements { try statement(writer) }
    }
}

/// What writing one entity needs besides the entity and the change to it: its encoded state,
/// the stamp of the newest write the change brings, and how its row was before. A sync step's
/// rows are computed where the step is prepared (`CommitBase.prepare`), on the other core: the
/// writer is the apply's critical path, and in a profile a third of its time was
/// this work (two indexed-column comparisons, the newest stamp, a lookup of the state before).
struct PreparedRow: Sendable {
    /// The entity's ID (bound as its text, `EntityID.text`, without a string: `SQLiteParameter`).
    var id: EntityID
    /// The entity's encoded state (`entityBlob`).
    var blob: [UInt8]
    /// The stamp of the newest write in the change (`updated_hlc` becomes at least its text).
    var newestStamp: StampText
    /// The entity had no row before the change: it has no child rows to delete.
    var isNew: Bool
    /// The values the table's indexes hold stay as they were: the narrow update of the row
    /// (the statements `…Unlisted`) suffices.
    var keepsIndexedColumns: Bool

    /// The row of `entity`, which `delta` changed from `previous`. `knowsPrevious` false: the
    /// state before is unknown, so the entity is treated as existing and its row written whole.
    /// `newest` is `delta.newestDot`, when the caller has it already.
    init<E: RowEntity>(
        _ id: EntityID, _ entity: E, delta: E, newest: Dot?? = nil, previous: E?, knowsPrevious: Bool
    ) {
        self.id = id
        blob = entityBlob(entity)
        newestStamp = StampText(stamp: (newest ?? delta.newestDot).map { HLC(time: $0.counter, replica: $0.replica) })
        isNew = knowsPrevious && previous == nil
        keepsIndexedColumns = previous.map { E.keepsIndexedColumns(from: $0, to: entity, delta: delta) } ?? false
    }
}

/// An entity with query rows: which of its values the indexes of its table hold.
protocol RowEntity: Entity {
    /// Whether the values the table's indexes hold are the same in `before` and `after`, which
    /// is `before` joined with `delta`. A field `delta` does not touch keeps its value (a join
    /// with bottom changes nothing), so most changes are settled without reading values.
    static func keepsIndexedColumns(from before: Self, to after: Self, delta: Self) -> Bool
}

extension Contact: RowEntity {
    static func keepsIndexedColumns(from before: Contact, to after: Contact, delta: Contact) -> Bool {
        if delta.name.isBottom && delta.company.isBottom && delta.owner.isBottom && delta.status.isBottom
            && delta.lifecycle.isBottom
        {
            // Debug builds (the tests) check the shortcut against the values.
            assert(
                IndexedContactColumns(before).droppingConflict == IndexedContactColumns(after).droppingConflict,
                "a change that touches no indexed field changed an indexed value")
            return before.hasConflictingValue == after.hasConflictingValue
        }
        return IndexedContactColumns(before) == IndexedContactColumns(after)
    }

    /// The `has_conflict` column.
    fileprivate var hasConflictingValue: Bool {
        name.hasConflict || company.hasConflict || title.hasConflict || owner.hasConflict || status.hasConflict
            || address.hasConflict || lifecycle.hasConflict
    }
}

extension CallNote: RowEntity {
    /// `call_notes_by_contact_time` holds the contact and the call time.
    static func keepsIndexedColumns(from before: CallNote, to after: CallNote, delta: CallNote) -> Bool {
        if delta.contact.isBottom && delta.callTime.isBottom { return true }
        return before.contact.value?.id == after.contact.value?.id && before.callTime.value == after.callTime.value
    }
}

extension ScheduleEntry: RowEntity {
    /// `schedule_entries_by_start` holds the start.
    static func keepsIndexedColumns(
        from before: ScheduleEntry, to after: ScheduleEntry, delta: ScheduleEntry
    )
        -> Bool
    {
        delta.interval.isBottom || before.interval.value?.start == after.interval.value?.start
    }
}

/// A contact's values that an index of `contacts` holds (`contacts_listing`, `contacts_by_owner`).
private struct IndexedContactColumns: Equatable {
    let name: String
    let company: String?
    let owner: String?
    let status: String?
    let lifecycle: String
    var hasConflict: Bool

    /// These values with the conflict flag cleared.
    var droppingConflict: IndexedContactColumns {
        var copy = self
        copy.hasConflict = false
        return copy
    }

    init(_ contact: Contact) {
        name = contact.name.value ?? ""
        company = contact.company.value
        owner = contact.owner.value
        status = contact.status.value?.rawValue
        lifecycle = lifecycleName(contact)
        hasConflict = contact.hasConflictingValue
    }
}

private func lifecycleName<E: Entity>(_ entity: E) -> String {
    switch entity.lifecycle.value {
    case .active?, nil: "active"
    case .deleted?: "deleted"
    case .merged?: "merged"
    }
}

extension LocalStore {
    /// Writes every entity `change` touched, as it is in `state` (after the change): see
    /// ``RowWrites/add(_:in:before:)``.
    func persistEntities(
        of change: TenantState, in state: TenantState, before: TenantState?, _ writer: RowWriter
    )
        throws
    {
        var writes = RowWrites()
        writes.add(change, in: state, before: before)
        try writes.run(writer)
    }

    /// One audit row per entity `change` touched, all at `stamp`.
    func audit(_ change: TenantState, stamp: HLC, user: String, action: String, _ writer: RowWriter) throws {
        let entities =
            change.contacts.keys.map { (EntityKind.contact, $0) } + change.notes.keys.map { (.note, $0) }
            + change.schedule.keys.map { (.schedule, $0) }
        try audit(entities, stamp: stamp, user: user, action: action, writer)
    }

    /// One audit row per entity, given by its kind and ID, numbered in this order, all at `stamp`.
    func audit(
        _ entities: [(kind: EntityKind, id: EntityID)], stamp: HLC, user: String, action: String, _ writer: RowWriter
    ) throws {
        let at = stamp
        let device = stamp.replica.hex
        var seq = try writer.reserveAudit(entities.count)
        for (kind, id) in entities {
            try writer.run(.audit, kind.rawValue, id, seq, at, user, device, action)
            seq += 1
        }
    }
}

extension RowWrites {
    /// Plans every entity `change` touched, as it is in `state` (after the change). Entities
    /// absent from `before` (the state before the change) have no query rows yet, so their
    /// child rows need no deleting; an entity in `before` whose indexed values stay as they were
    /// gets the narrow update of its row. Without `before` every entity is treated as existing
    /// and its row written whole.
    mutating func add(_ change: TenantState, in state: TenantState, before: TenantState?) {
        for (id, delta) in change.contacts.valueByKey {
            let contact = state.contacts[id]!
            let previous = before?.contacts[id]
            add(
                contact, delta: delta,
                PreparedRow(id, contact, delta: delta, previous: previous, knowsPrevious: before != nil))
        }
        for (id, delta) in change.notes.valueByKey {
            let note = state.notes[id]!
            let previous = before?.notes[id]
            add(
                note, delta: delta,
                PreparedRow(id, note, delta: delta, previous: previous, knowsPrevious: before != nil))
        }
        for (id, delta) in change.schedule.valueByKey {
            let entry = state.schedule[id]!
            let previous = before?.schedule[id]
            add(
                entry, delta: delta,
                PreparedRow(id, entry, delta: delta, previous: previous, knowsPrevious: before != nil))
        }
    }

    /// Brings the child rows of `owner` in one table in step with the elements `delta` touched:
    /// an element present after the change has its row, one removed has none. Elements the
    /// delta does not hold kept their presence in the merge, so their rows are right already.
    /// (A new owner has no rows to delete.)
    private mutating func addChildren(
        _ delta: ORSet<String>, after: ORSet<String>, isNew: Bool, insert: RowWriter.SQL, delete: RowWriter.SQL,
        owner: EntityID
    ) {
        for entry in delta.entries {
            if after.contains(entry.element) {
                add(insert, owner, entry.element)
            } else if !isNew {
                add(delete, owner, entry.element)
            }
        }
    }

    /// Plans a contact's row; `delta` is what changed, so child rows of untouched fields are left alone
    /// (rewriting them dirtied pages for nothing on every edit). If no indexed value changed,
    /// only the other columns are written.
    mutating func add(_ contact: Contact, delta: Contact, _ row: PreparedRow) {
        let owner = row.id
        if row.keepsIndexedColumns {
            add(
                .contactUnlisted, contact.title.value, contact.address.value, row.newestStamp, row.blob, owner)
        } else {
            let indexed = IndexedContactColumns(contact)
            add(
                .contact, owner, indexed.name, indexed.company, contact.title.value, indexed.owner, indexed.status,
                contact.address.value, indexed.lifecycle, row.newestStamp, indexed.hasConflict, row.blob)
        }
        // Child rows only for the fields this change touched: rewriting untouched ones dirtied
        // pages (and WAL frames) for nothing on every edit.
        addChildren(
            delta.phones, after: contact.phones, isNew: row.isNew, insert: .insertPhone, delete: .deletePhone,
            owner: owner)
        addChildren(
            delta.emails, after: contact.emails, isNew: row.isNew, insert: .insertEmail, delete: .deleteEmail,
            owner: owner)
        addChildren(
            delta.tags, after: contact.tags, isNew: row.isNew, insert: .insertTag, delete: .deleteTag, owner: owner)
        if delta.customFields.isBottom { return }
        if !row.isNew { add(.deleteFields, owner) }
        for key in contact.customFields.sortedKeys {
            if let value = contact.customFields[key]?.value { add(.insertField, owner, key, value) }
        }
    }

    /// Plans a call note's row; with its contact and call time (the columns `call_notes_by_contact_time`
    /// holds) unchanged, only the other columns are written.
    mutating func add(_ note: CallNote, delta: CallNote, _ row: PreparedRow) {
        let owner = row.id
        let duration = note.duration.value.map { Int64($0) }
        if row.keepsIndexedColumns {
            add(
                .noteUnlisted, note.author.value, duration, note.direction.value?.rawValue,
                note.outcome.value?.rawValue, note.body.value, lifecycleName(note), row.newestStamp, row.blob, owner)
        } else {
            add(
                .note, owner, note.contact.value?.id?.text, note.author.value, note.callTime.value, duration,
                note.direction.value?.rawValue, note.outcome.value?.rawValue, note.body.value, lifecycleName(note),
                row.newestStamp, row.blob)
        }
        addChildren(
            delta.tags, after: note.tags, isNew: row.isNew, insert: .insertNoteTag, delete: .deleteNoteTag,
            owner: owner)
    }

    /// Plans a schedule entry's row; with its start (the column `schedule_entries_by_start` holds)
    /// unchanged, only the other columns are written.
    mutating func add(_ entry: ScheduleEntry, delta: ScheduleEntry, _ row: PreparedRow) {
        let owner = row.id
        let interval = entry.interval.value
        if row.keepsIndexedColumns {
            add(
                .scheduleEntryUnlisted, entry.entryKind.value?.rawValue, entry.title.value, interval?.end,
                interval?.timeZone, entry.contact.value?.id?.text, entry.location.value, entry.status.value?.rawValue,
                lifecycleName(entry), row.newestStamp, row.blob, owner)
        } else {
            add(
                .scheduleEntry, owner, entry.entryKind.value?.rawValue, entry.title.value, interval?.start,
                interval?.end, interval?.timeZone, entry.contact.value?.id?.text, entry.location.value,
                entry.status.value?.rawValue, lifecycleName(entry), row.newestStamp, row.blob)
        }
        if delta.assignees.isBottom && delta.interval.isBottom { return }
        if !row.isNew { add(.deleteAssignees, owner) }
        if let interval {
            for assignee in entry.assignees.elements {
                add(.insertAssignee, assignee, interval.start, owner, interval.end)
            }
        }
    }
}
