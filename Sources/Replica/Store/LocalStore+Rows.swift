import CRDT
import Domain
import Foundation
import GRDB

// Writing an entity: its CRDT blob, and the query rows derived from its current (winning)
// values. Child rows are replaced whole; statements are cached per connection.

extension LocalStore {
    /// Saves every entity `change` touched, as it is in `state` (after the change).
    func persistEntities(of change: TenantState, in state: TenantState, _ db: Database) throws {
        for (id, delta) in change.contacts.valueByKey { try save(id, state.contacts[id]!, delta: delta, db) }
        for (id, delta) in change.notes.valueByKey { try save(id, state.notes[id]!, delta: delta, db) }
        for (id, delta) in change.schedule.valueByKey { try save(id, state.schedule[id]!, delta: delta, db) }
    }

    func audit(_ change: TenantState, stamp: HLC, user: String, action: String, _ db: Database) throws {
        let statement = try db.cachedStatement(
            sql: "INSERT INTO audit (at_hlc, user, device, action, entity_kind, entity_id) VALUES (?, ?, ?, ?, ?, ?)")
        func log(_ kind: EntityKind, _ ids: some Sequence<EntityID>) throws {
            for id in ids {
                try statement.execute(arguments: [stamp.text, user, stamp.replica.hex, action, kind.rawValue, id.text])
            }
        }
        try log(.contact, change.contacts.keys)
        try log(.note, change.notes.keys)
        try log(.schedule, change.schedule.keys)
    }

    private func saveBlob<E: Entity>(_ id: EntityID, _ entity: E, _ db: Database) throws {
        try db.cachedStatement(
            sql:
                "INSERT INTO entity_state (kind, id, state) VALUES (?, ?, ?) ON CONFLICT (kind, id) DO UPDATE SET state = excluded.state"
        ).execute(arguments: [E.kind.rawValue, id.text, entityBlob(entity)])
    }

    private func lifecycleName<E: Entity>(_ entity: E) -> String {
        switch entity.lifecycle.value {
        case .active?, nil: "active"
        case .deleted?: "deleted"
        case .merged?: "merged"
        }
    }

    private func newestStamp<E: Entity>(_ entity: E) -> String {
        entity.knowledge.entries.max { $0.counter < $1.counter }.map { HLC(time: $0.counter, replica: $0.replica).text }
            ?? ""
    }

    private func replaceChildren(
        table: String, key: String, value: String, owner: String, _ values: [String], _ db: Database
    )
        throws
    {
        try db.cachedStatement(sql: "DELETE FROM \(table) WHERE \(key) = ?").execute(arguments: [owner])
        let insert = try db.cachedStatement(sql: "INSERT INTO \(table) (\(key), \(value)) VALUES (?, ?)")
        for item in values { try insert.execute(arguments: [owner, item]) }
    }

    /// Saves a contact; `delta` is what changed, so child rows of untouched fields are left alone
    /// (rewriting them dirtied pages for nothing on every edit).
    private func save(_ id: EntityID, _ contact: Contact, delta: Contact, _ db: Database) throws {
        try saveBlob(id, contact, db)
        let conflict =
            contact.name.hasConflict || contact.company.hasConflict || contact.title.hasConflict
            || contact.owner.hasConflict || contact.status.hasConflict || contact.address.hasConflict
            || contact.lifecycle.hasConflict
        try db.cachedStatement(
            sql: """
                INSERT INTO contacts
                    (id, name, company, title, owner, status, address, lifecycle, updated_hlc, has_conflict)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (id) DO UPDATE SET
                    name = excluded.name, company = excluded.company, title = excluded.title, owner = excluded.owner,
                    status = excluded.status, address = excluded.address, lifecycle = excluded.lifecycle,
                    updated_hlc = MAX(updated_hlc, excluded.updated_hlc), has_conflict = excluded.has_conflict
                """
        ).execute(arguments: [
            id.text, contact.name.value ?? "", contact.company.value, contact.title.value, contact.owner.value,
            contact.status.value?.rawValue, contact.address.value, lifecycleName(contact), newestStamp(delta),
            conflict,
        ])
        let owner = id.text
        // Child rows only for the fields this change touched: rewriting untouched ones dirtied
        // pages (and WAL frames) for nothing on every edit.
        if !delta.phones.isBottom {
            try replaceChildren(
                table: "contact_phones", key: "contact_id", value: "phone", owner: owner, contact.phones.elements, db)
        }
        if !delta.emails.isBottom {
            try replaceChildren(
                table: "contact_emails", key: "contact_id", value: "email", owner: owner, contact.emails.elements, db)
        }
        if !delta.tags.isBottom {
            try replaceChildren(
                table: "contact_tags", key: "contact_id", value: "tag", owner: owner, contact.tags.elements, db)
        }
        if delta.customFields.isBottom { return }
        try db.cachedStatement(sql: "DELETE FROM contact_fields WHERE contact_id = ?").execute(arguments: [owner])
        let field = try db.cachedStatement(sql: "INSERT INTO contact_fields (contact_id, key, value) VALUES (?, ?, ?)")
        for key in contact.customFields.sortedKeys {
            if let value = contact.customFields[key]?.value { try field.execute(arguments: [owner, key, value]) }
        }
    }

    private func save(_ id: EntityID, _ note: CallNote, delta: CallNote, _ db: Database) throws {
        try saveBlob(id, note, db)
        try db.cachedStatement(
            sql: """
                INSERT INTO call_notes
                    (id, contact_id, author, call_time, duration, direction, outcome, body, lifecycle, updated_hlc)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (id) DO UPDATE SET
                    contact_id = excluded.contact_id, author = excluded.author, call_time = excluded.call_time,
                    duration = excluded.duration, direction = excluded.direction, outcome = excluded.outcome,
                    body = excluded.body, lifecycle = excluded.lifecycle, updated_hlc = MAX(updated_hlc, excluded.updated_hlc)
                """
        ).execute(arguments: [
            id.text, note.contact.value?.id?.text, note.author.value, note.callTime.value,
            note.duration.value.map { Int64($0) },
            note.direction.value?.rawValue, note.outcome.value?.rawValue, note.body.value, lifecycleName(note),
            newestStamp(delta),
        ])
        if !delta.tags.isBottom {
            try replaceChildren(
                table: "note_tags", key: "note_id", value: "tag", owner: id.text, note.tags.elements, db)
        }
    }

    private func save(_ id: EntityID, _ entry: ScheduleEntry, delta: ScheduleEntry, _ db: Database) throws {
        try saveBlob(id, entry, db)
        let interval = entry.interval.value
        try db.cachedStatement(
            sql: """
                INSERT INTO schedule_entries
                    (id, kind, title, start_ms, end_ms, time_zone, contact_id, location, status, lifecycle, updated_hlc)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (id) DO UPDATE SET
                    kind = excluded.kind, title = excluded.title, start_ms = excluded.start_ms, end_ms = excluded.end_ms,
                    time_zone = excluded.time_zone, contact_id = excluded.contact_id, location = excluded.location,
                    status = excluded.status, lifecycle = excluded.lifecycle,
                    updated_hlc = MAX(updated_hlc, excluded.updated_hlc)
                """
        ).execute(arguments: [
            id.text, entry.entryKind.value?.rawValue, entry.title.value, interval?.start, interval?.end,
            interval?.timeZone,
            entry.contact.value?.id?.text, entry.location.value, entry.status.value?.rawValue, lifecycleName(entry),
            newestStamp(delta),
        ])
        if delta.assignees.isBottom && delta.interval.isBottom { return }
        try db.cachedStatement(sql: "DELETE FROM schedule_assignees WHERE entry_id = ?").execute(arguments: [id.text])
        if let interval {
            let insert = try db.cachedStatement(
                sql: "INSERT INTO schedule_assignees (assignee, start_ms, entry_id, end_ms) VALUES (?, ?, ?, ?)")
            for assignee in entry.assignees.elements {
                try insert.execute(arguments: [assignee, interval.start, id.text, interval.end])
            }
        }
    }
}
