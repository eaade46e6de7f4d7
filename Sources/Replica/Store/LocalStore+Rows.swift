import CRDT
import Domain
import Foundation
import GRDB
import GRDBSQLite

// Writing an entity: its CRDT blob, and the query rows derived from its current (winning)
// values. Child rows are replaced whole.

/// The statements that write entities and their query rows, each prepared at most once per
/// transaction and reused for every row: a `cachedStatement(sql:)` lookup hashes the whole SQL
/// text, and with nine statements per contact that showed in the import's profile. Parameters
/// are bound through SQLite's C API, without building `StatementArguments` (an array of boxed
/// values per row, another tenth of that profile). Statements run this way bypass GRDB's
/// transaction observers; nothing observes the store's database through GRDB.
final class RowWriter {
    enum SQL: Int, CaseIterable {
        case entityState, contact, contactUnlisted, note, noteUnlisted, scheduleEntry, scheduleEntryUnlisted, audit
        case deletePhone, insertPhone, deleteEmail, insertEmail, deleteTag, insertTag
        case deleteFields, insertField, deleteNoteTag, insertNoteTag, deleteAssignees, insertAssignee

        var text: String {
            switch self {
            case .entityState:
                "INSERT INTO entity_state (kind, id, state) VALUES (?, ?, ?) ON CONFLICT (kind, id) DO UPDATE SET state = excluded.state"
            case .contact:
                """
                INSERT INTO contacts
                    (id, name, company, title, owner, status, address, lifecycle, updated_hlc, has_conflict)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (id) DO UPDATE SET
                    name = excluded.name, company = excluded.company, title = excluded.title, owner = excluded.owner,
                    status = excluded.status, address = excluded.address, lifecycle = excluded.lifecycle,
                    updated_hlc = MAX(updated_hlc, excluded.updated_hlc), has_conflict = excluded.has_conflict
                """
            // Only the columns no index holds: SQLite rewrites an index entry whenever a SET names
            // one of its columns, even with the value it had (5x slower per row, measured), and
            // the listing index's entries lie in name order, far from each other.
            case .contactUnlisted:
                "UPDATE contacts SET title = ?, address = ?, updated_hlc = MAX(updated_hlc, ?) WHERE id = ?"
            case .note:
                """
                INSERT INTO call_notes
                    (id, contact_id, author, call_time, duration, direction, outcome, body, lifecycle, updated_hlc)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (id) DO UPDATE SET
                    contact_id = excluded.contact_id, author = excluded.author, call_time = excluded.call_time,
                    duration = excluded.duration, direction = excluded.direction, outcome = excluded.outcome,
                    body = excluded.body, lifecycle = excluded.lifecycle, updated_hlc = MAX(updated_hlc, excluded.updated_hlc)
                """
            // A note whose contact and call time stay: its entry in call_notes_by_contact_time stays.
            case .noteUnlisted:
                """
                UPDATE call_notes SET
                    author = ?, duration = ?, direction = ?, outcome = ?, body = ?, lifecycle = ?,
                    updated_hlc = MAX(updated_hlc, ?)
                WHERE id = ?
                """
            case .scheduleEntry:
                """
                INSERT INTO schedule_entries
                    (id, kind, title, start_ms, end_ms, time_zone, contact_id, location, status, lifecycle, updated_hlc)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (id) DO UPDATE SET
                    kind = excluded.kind, title = excluded.title, start_ms = excluded.start_ms, end_ms = excluded.end_ms,
                    time_zone = excluded.time_zone, contact_id = excluded.contact_id, location = excluded.location,
                    status = excluded.status, lifecycle = excluded.lifecycle,
                    updated_hlc = MAX(updated_hlc, excluded.updated_hlc)
                """
            // An entry whose start stays: its entry in schedule_entries_by_start stays.
            case .scheduleEntryUnlisted:
                """
                UPDATE schedule_entries SET
                    kind = ?, title = ?, end_ms = ?, time_zone = ?, contact_id = ?, location = ?, status = ?,
                    lifecycle = ?, updated_hlc = MAX(updated_hlc, ?)
                WHERE id = ?
                """
            case .audit:
                "INSERT INTO audit (at_hlc, user, device, action, entity_kind, entity_id) VALUES (?, ?, ?, ?, ?, ?)"
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
}

extension LocalStore {
    /// Saves every entity `change` touched, as it is in `state` (after the change). Entities
    /// absent from `before` (the state before the change) have no query rows yet, so their
    /// child rows need no deleting; an entity in `before` whose indexed values stay as they were
    /// gets the narrow update of its row. Without `before` every entity is treated as existing
    /// and its row written whole.
    /// `blobs` holds entities' encoded state computed ahead (`CommitBase.prepare`); the others
    /// are encoded here.
    func persistEntities(
        of change: TenantState, in state: TenantState, before: TenantState?, blobs: [EntityID: Data] = [:],
        _ writer: RowWriter
    ) throws {
        for (id, delta) in change.contacts.valueByKey {
            let previous = before?.contacts[id]
            try save(
                id, state.contacts[id]!, delta: delta, isNew: before != nil && previous == nil, previous: previous,
                blob: blobs[id], writer)
        }
        for (id, delta) in change.notes.valueByKey {
            let previous = before?.notes[id]
            try save(
                id, state.notes[id]!, delta: delta, isNew: before != nil && previous == nil, previous: previous,
                blob: blobs[id], writer)
        }
        for (id, delta) in change.schedule.valueByKey {
            let previous = before?.schedule[id]
            try save(
                id, state.schedule[id]!, delta: delta, isNew: before != nil && previous == nil, previous: previous,
                blob: blobs[id], writer)
        }
    }

    func audit(_ change: TenantState, stamp: HLC, user: String, action: String, _ writer: RowWriter) throws {
        let at = stamp.text
        let device = stamp.replica.hex
        func log(_ kind: EntityKind, _ ids: some Sequence<EntityID>) throws {
            for id in ids { try writer.run(.audit, at, user, device, action, kind.rawValue, id.text) }
        }
        try log(.contact, change.contacts.keys)
        try log(.note, change.notes.keys)
        try log(.schedule, change.schedule.keys)
    }

    private func saveBlob<E: Entity>(_ id: String, _ entity: E, _ blob: Data?, _ writer: RowWriter) throws {
        try writer.run(.entityState, E.kind.rawValue, id, blob ?? entityBlob(entity))
    }

    private func lifecycleName<E: Entity>(_ entity: E) -> String {
        switch entity.lifecycle.value {
        case .active?, nil: "active"
        case .deleted?: "deleted"
        case .merged?: "merged"
        }
    }

    private func newestStamp<E: Entity>(_ entity: E) -> String {
        entity.newestDot.map { HLC(time: $0.counter, replica: $0.replica).text } ?? ""
    }

    /// Brings the child rows of `owner` in one table in step with the elements `delta` touched:
    /// an element present after the change has its row, one removed has none. Elements the
    /// delta does not hold kept their presence in the merge, so their rows are right already.
    /// (A new owner has no rows to delete.)
    private func updateChildren(
        _ delta: ORSet<String>, after: ORSet<String>, isNew: Bool, insert: RowWriter.SQL, delete: RowWriter.SQL,
        owner: String, _ writer: RowWriter
    ) throws {
        for entry in delta.entries {
            if after.contains(entry.element) {
                try writer.run(insert, owner, entry.element)
            } else if !isNew {
                try writer.run(delete, owner, entry.element)
            }
        }
    }

    /// A contact's values that an index of `contacts` holds (`contacts_listing`, `contacts_by_owner`).
    private struct IndexedColumns: Equatable {
        let name: String
        let company: String?
        let owner: String?
        let status: String?
        let lifecycle: String
        let hasConflict: Bool
    }

    private func indexedColumns(_ contact: Contact) -> IndexedColumns {
        IndexedColumns(
            name: contact.name.value ?? "", company: contact.company.value, owner: contact.owner.value,
            status: contact.status.value?.rawValue, lifecycle: lifecycleName(contact),
            hasConflict: contact.name.hasConflict || contact.company.hasConflict || contact.title.hasConflict
                || contact.owner.hasConflict || contact.status.hasConflict || contact.address.hasConflict
                || contact.lifecycle.hasConflict)
    }

    /// Saves a contact; `delta` is what changed, so child rows of untouched fields are left alone
    /// (rewriting them dirtied pages for nothing on every edit). `previous` is the contact as its
    /// row holds it, when known: if no indexed value changed, only the other columns are written.
    private func save(
        _ id: EntityID, _ contact: Contact, delta: Contact, isNew: Bool, previous: Contact?, blob: Data?,
        _ writer: RowWriter
    ) throws {
        let owner = id.text
        try saveBlob(owner, contact, blob, writer)
        let indexed = indexedColumns(contact)
        if let previous, indexedColumns(previous) == indexed {
            try writer.run(.contactUnlisted, contact.title.value, contact.address.value, newestStamp(delta), owner)
        } else {
            try writer.run(
                .contact, owner, indexed.name, indexed.company, contact.title.value, indexed.owner, indexed.status,
                contact.address.value, indexed.lifecycle, newestStamp(delta), indexed.hasConflict)
        }
        // Child rows only for the fields this change touched: rewriting untouched ones dirtied
        // pages (and WAL frames) for nothing on every edit.
        try updateChildren(
            delta.phones, after: contact.phones, isNew: isNew, insert: .insertPhone, delete: .deletePhone, owner: owner,
            writer)
        try updateChildren(
            delta.emails, after: contact.emails, isNew: isNew, insert: .insertEmail, delete: .deleteEmail, owner: owner,
            writer)
        try updateChildren(
            delta.tags, after: contact.tags, isNew: isNew, insert: .insertTag, delete: .deleteTag, owner: owner, writer)
        if delta.customFields.isBottom { return }
        if !isNew { try writer.run(.deleteFields, owner) }
        for key in contact.customFields.sortedKeys {
            if let value = contact.customFields[key]?.value { try writer.run(.insertField, owner, key, value) }
        }
    }

    /// Saves a call note; with `previous` known and its contact and call time (the columns
    /// `call_notes_by_contact_time` holds) unchanged, only the other columns are written.
    private func save(
        _ id: EntityID, _ note: CallNote, delta: CallNote, isNew: Bool, previous: CallNote?, blob: Data?,
        _ writer: RowWriter
    ) throws {
        let owner = id.text
        try saveBlob(owner, note, blob, writer)
        let contact = note.contact.value?.id?.text
        let duration = note.duration.value.map { Int64($0) }
        if let previous, previous.contact.value?.id?.text == contact, previous.callTime.value == note.callTime.value {
            try writer.run(
                .noteUnlisted, note.author.value, duration, note.direction.value?.rawValue,
                note.outcome.value?.rawValue, note.body.value, lifecycleName(note), newestStamp(delta), owner)
        } else {
            try writer.run(
                .note, owner, contact, note.author.value, note.callTime.value, duration,
                note.direction.value?.rawValue, note.outcome.value?.rawValue, note.body.value, lifecycleName(note),
                newestStamp(delta))
        }
        try updateChildren(
            delta.tags, after: note.tags, isNew: isNew, insert: .insertNoteTag, delete: .deleteNoteTag, owner: owner,
            writer)
    }

    /// Saves a schedule entry; with `previous` known and its start (the column
    /// `schedule_entries_by_start` holds) unchanged, only the other columns are written.
    private func save(
        _ id: EntityID, _ entry: ScheduleEntry, delta: ScheduleEntry, isNew: Bool, previous: ScheduleEntry?,
        blob: Data?, _ writer: RowWriter
    ) throws {
        let owner = id.text
        try saveBlob(owner, entry, blob, writer)
        let interval = entry.interval.value
        if let previous, previous.interval.value?.start == interval?.start {
            try writer.run(
                .scheduleEntryUnlisted, entry.entryKind.value?.rawValue, entry.title.value, interval?.end,
                interval?.timeZone, entry.contact.value?.id?.text, entry.location.value, entry.status.value?.rawValue,
                lifecycleName(entry), newestStamp(delta), owner)
        } else {
            try writer.run(
                .scheduleEntry, owner, entry.entryKind.value?.rawValue, entry.title.value, interval?.start,
                interval?.end, interval?.timeZone, entry.contact.value?.id?.text, entry.location.value,
                entry.status.value?.rawValue, lifecycleName(entry), newestStamp(delta))
        }
        if delta.assignees.isBottom && delta.interval.isBottom { return }
        if !isNew { try writer.run(.deleteAssignees, owner) }
        if let interval {
            for assignee in entry.assignees.elements {
                try writer.run(.insertAssignee, assignee, interval.start, owner, interval.end)
            }
        }
    }
}
