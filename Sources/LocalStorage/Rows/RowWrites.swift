import CRDT
import Domain
import Foundation
import GRDB
import GRDBSQLite
import StoreSupport

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

/// The `lifecycle` column of an entity.
func lifecycleName<E: Entity>(_ entity: E) -> String {
    switch entity.lifecycle.value {
    case .active?, nil: "active"
    case .deleted?: "deleted"
    case .merged?: "merged"
    }
}
