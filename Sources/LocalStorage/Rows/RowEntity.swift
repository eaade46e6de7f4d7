import CRDT
import Domain
import Foundation
import GRDB
import GRDBSQLite
import StoreSupport

/// An entity with query rows: which of its values the indexes of its table hold.
protocol RowEntity: Entity {
    /// Whether the values the table's indexes hold are the same in `before` and `after`, which
    /// is `before` joined with `delta`. A field `delta` does not touch keeps its value (a join
    /// with bottom changes nothing), so most changes are settled without reading values.
    static func keepsIndexedColumns(from before: Self, to after: Self, delta: Self) -> Bool
}

// Writing an entity: its row, which holds its CRDT blob (schema 0005) beside the columns derived
// from its current (winning) values, and its child rows, kept in step element by element.

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
    var hasConflictingValue: Bool {
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
