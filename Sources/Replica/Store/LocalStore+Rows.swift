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
        case entityState, contact, note, scheduleEntry, audit
        case deletePhones, insertPhone, deleteEmails, insertEmail, deleteTags, insertTag
        case deleteFields, insertField, deleteNoteTags, insertNoteTag, deleteAssignees, insertAssignee

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
            case .audit:
                "INSERT INTO audit (at_hlc, user, device, action, entity_kind, entity_id) VALUES (?, ?, ?, ?, ?, ?)"
            case .deletePhones: "DELETE FROM contact_phones WHERE contact_id = ?"
            case .insertPhone: "INSERT INTO contact_phones (contact_id, phone) VALUES (?, ?)"
            case .deleteEmails: "DELETE FROM contact_emails WHERE contact_id = ?"
            case .insertEmail: "INSERT INTO contact_emails (contact_id, email) VALUES (?, ?)"
            case .deleteTags: "DELETE FROM contact_tags WHERE contact_id = ?"
            case .insertTag: "INSERT INTO contact_tags (contact_id, tag) VALUES (?, ?)"
            case .deleteFields: "DELETE FROM contact_fields WHERE contact_id = ?"
            case .insertField: "INSERT INTO contact_fields (contact_id, key, value) VALUES (?, ?, ?)"
            case .deleteNoteTags: "DELETE FROM note_tags WHERE note_id = ?"
            case .insertNoteTag: "INSERT INTO note_tags (note_id, tag) VALUES (?, ?)"
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
    /// child rows need no deleting; without `before` every entity is treated as existing.
    func persistEntities(
        of change: TenantState, in state: TenantState, before: TenantState?, _ writer: RowWriter
    ) throws {
        for (id, delta) in change.contacts.valueByKey {
            try save(
                id, state.contacts[id]!, delta: delta, isNew: before.map { $0.contacts[id] == nil } ?? false, writer)
        }
        for (id, delta) in change.notes.valueByKey {
            try save(id, state.notes[id]!, delta: delta, isNew: before.map { $0.notes[id] == nil } ?? false, writer)
        }
        for (id, delta) in change.schedule.valueByKey {
            try save(
                id, state.schedule[id]!, delta: delta, isNew: before.map { $0.schedule[id] == nil } ?? false, writer)
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

    private func saveBlob<E: Entity>(_ id: String, _ entity: E, _ writer: RowWriter) throws {
        try writer.run(.entityState, E.kind.rawValue, id, entityBlob(entity))
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

    /// Replaces the child rows of `owner` in one table (`delete` none when the owner is new).
    private func replaceChildren(
        delete: RowWriter.SQL?, insert: RowWriter.SQL, owner: String, _ values: [String], _ writer: RowWriter
    ) throws {
        if let delete { try writer.run(delete, owner) }
        for value in values { try writer.run(insert, owner, value) }
    }

    /// Saves a contact; `delta` is what changed, so child rows of untouched fields are left alone
    /// (rewriting them dirtied pages for nothing on every edit).
    private func save(_ id: EntityID, _ contact: Contact, delta: Contact, isNew: Bool, _ writer: RowWriter) throws {
        let owner = id.text
        try saveBlob(owner, contact, writer)
        let conflict =
            contact.name.hasConflict || contact.company.hasConflict || contact.title.hasConflict
            || contact.owner.hasConflict || contact.status.hasConflict || contact.address.hasConflict
            || contact.lifecycle.hasConflict
        try writer.run(
            .contact, owner, contact.name.value ?? "", contact.company.value, contact.title.value, contact.owner.value,
            contact.status.value?.rawValue, contact.address.value, lifecycleName(contact), newestStamp(delta), conflict)
        // Child rows only for the fields this change touched: rewriting untouched ones dirtied
        // pages (and WAL frames) for nothing on every edit.
        if !delta.phones.isBottom {
            try replaceChildren(
                delete: isNew ? nil : .deletePhones, insert: .insertPhone, owner: owner, contact.phones.elements, writer
            )
        }
        if !delta.emails.isBottom {
            try replaceChildren(
                delete: isNew ? nil : .deleteEmails, insert: .insertEmail, owner: owner, contact.emails.elements, writer
            )
        }
        if !delta.tags.isBottom {
            try replaceChildren(
                delete: isNew ? nil : .deleteTags, insert: .insertTag, owner: owner, contact.tags.elements, writer)
        }
        if delta.customFields.isBottom { return }
        if !isNew { try writer.run(.deleteFields, owner) }
        for key in contact.customFields.sortedKeys {
            if let value = contact.customFields[key]?.value { try writer.run(.insertField, owner, key, value) }
        }
    }

    private func save(_ id: EntityID, _ note: CallNote, delta: CallNote, isNew: Bool, _ writer: RowWriter) throws {
        let owner = id.text
        try saveBlob(owner, note, writer)
        try writer.run(
            .note, owner, note.contact.value?.id?.text, note.author.value, note.callTime.value,
            note.duration.value.map { Int64($0) }, note.direction.value?.rawValue, note.outcome.value?.rawValue,
            note.body.value, lifecycleName(note), newestStamp(delta))
        if !delta.tags.isBottom {
            try replaceChildren(
                delete: isNew ? nil : .deleteNoteTags, insert: .insertNoteTag, owner: owner, note.tags.elements, writer)
        }
    }

    private func save(
        _ id: EntityID, _ entry: ScheduleEntry, delta: ScheduleEntry, isNew: Bool, _ writer: RowWriter
    ) throws {
        let owner = id.text
        try saveBlob(owner, entry, writer)
        let interval = entry.interval.value
        try writer.run(
            .scheduleEntry, owner, entry.entryKind.value?.rawValue, entry.title.value, interval?.start, interval?.end,
            interval?.timeZone, entry.contact.value?.id?.text, entry.location.value, entry.status.value?.rawValue,
            lifecycleName(entry), newestStamp(delta))
        if delta.assignees.isBottom && delta.interval.isBottom { return }
        if !isNew { try writer.run(.deleteAssignees, owner) }
        if let interval {
            for assignee in entry.assignees.elements {
                try writer.run(.insertAssignee, assignee, interval.start, owner, interval.end)
            }
        }
    }
}
