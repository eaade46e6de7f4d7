import CRDT
import Domain
import Foundation
import LocalStorage
import Replica
import StoreSupport

// What `replica-cli --json` prints: plain, stable shapes built only from replicated state, so
// two replicas that have seen the same changes print byte-identical JSON. Times are ISO 8601
// in UTC (`2026-03-02T09:30:00.000Z`); people see local time in the human output instead.

/// A contact as shown: the displayed (winning) value of every field.
public struct ContactView: Codable, Equatable, Sendable {
    public let id: String
    public let name: String
    public let company: String?
    public let title: String?
    public let owner: String?
    public let status: String?
    public let address: String?
    public let phones: [String]
    public let emails: [String]
    public let tags: [String]
    public let fields: [String: String]
    /// `active`, `deleted` or `merged`.
    public let lifecycle: String
    /// The contact this one was merged into, when merged.
    public let mergedInto: String?
    /// Fields holding concurrent values (see `conflicts list`).
    public let conflictingFields: [String]

    public init(_ id: EntityID, _ contact: Contact) {
        self.id = id.text
        name = contact.name.value ?? ""
        company = contact.company.value
        title = contact.title.value
        owner = contact.owner.value
        status = contact.status.value?.rawValue
        address = contact.address.value
        phones = contact.phones.elements.sorted()
        emails = contact.emails.elements.sorted()
        tags = contact.tags.elements.sorted()
        var fields = [String: String]()
        for (key, register) in contact.customFields.valueByKey {
            if let value = register.value { fields[key] = value }
        }
        self.fields = fields
        lifecycle = lifecycleName(contact.lifecycle.value)
        if case .merged(let into, _)? = contact.lifecycle.value { mergedInto = into.text } else { mergedInto = nil }
        var conflicting = [String]()
        for (field, register) in [
            ("name", contact.name), ("company", contact.company), ("title", contact.title), ("owner", contact.owner),
            ("address", contact.address),
        ] where register.hasConflict { conflicting.append(field) }
        if contact.status.hasConflict { conflicting.append("status") }
        if contact.lifecycle.hasConflict { conflicting.append("lifecycle") }
        for (key, register) in contact.customFields.valueByKey where register.hasConflict {
            conflicting.append("field." + key)
        }
        conflictingFields = conflicting.sorted()
    }
}

/// A call note as shown.
public struct NoteView: Codable, Equatable, Sendable {
    public let id: String
    public let contact: String?
    public let author: String?
    /// When the call started, ISO 8601 UTC.
    public let at: String?
    public let durationSeconds: UInt32?
    public let direction: String?
    public let outcome: String?
    public let tags: [String]
    public let text: String
    public let lifecycle: String

    public init(_ id: EntityID, _ note: CallNote) {
        self.id = id.text
        contact = note.contact.value?.id?.text
        author = note.author.value
        at = note.callTime.value.map(TimeText.utc)
        durationSeconds = note.duration.value
        direction = note.direction.value?.rawValue
        outcome = note.outcome.value?.rawValue
        tags = note.tags.elements.sorted()
        text = note.body.value ?? ""
        lifecycle = lifecycleName(note.lifecycle.value)
    }
}

/// A schedule entry as shown.
public struct ScheduleView: Codable, Equatable, Sendable {
    public let id: String
    public let title: String
    public let kind: String?
    /// ISO 8601 UTC; `end` is exclusive.
    public let start: String?
    public let end: String?
    /// The time zone it was planned in.
    public let timeZone: String?
    public let assignees: [String]
    public let contact: String?
    public let location: String?
    public let status: String?
    public let lifecycle: String

    public init(_ id: EntityID, _ entry: ScheduleEntry) {
        self.id = id.text
        title = entry.title.value ?? ""
        kind = entry.entryKind.value?.rawValue
        start = entry.interval.value.map { TimeText.utc($0.start) }
        end = entry.interval.value.map { TimeText.utc($0.end) }
        timeZone = entry.interval.value?.timeZone
        assignees = entry.assignees.elements.sorted()
        contact = entry.contact.value?.id?.text
        location = entry.location.value
        status = entry.status.value?.rawValue
        lifecycle = lifecycleName(entry.lifecycle.value)
    }
}

/// A conflict as shown: sides are numbered from 1, as `conflicts resolve --pick N` takes them.
public struct ConflictView: Codable, Equatable, Sendable {
    public struct Side: Codable, Equatable, Sendable {
        public let number: Int
        public let entity: String
        public let entityKind: String
        public let field: String
        public let value: String
        public let user: String
        public let device: String
        /// When the side was written (its HLC time), ISO 8601 UTC.
        public let at: String
    }

    public let id: String
    public let kind: String
    public let entities: [String]
    public let field: String?
    /// The `conflicts resolve` options that fit this conflict (`pick`, `value`, `accept` …).
    public let resolutions: [String]
    public let sides: [Side]

    public init(_ conflict: Conflict) {
        id = conflict.id
        kind = conflict.kind.rawValue
        entities = conflict.entities.map(\.id.text)
        field = conflict.field
        resolutions = conflict.resolutions
        sides = conflict.sides.enumerated().map { index, side in
            Side(
                number: index + 1, entity: side.entity.id.text, entityKind: side.entity.kind.rawValue,
                field: side.field,
                value: side.value, user: side.user, device: side.device.hex,
                at: TimeText.utc(Int64(side.stamp.physical)))
        }
    }
}

func lifecycleName(_ lifecycle: Lifecycle?) -> String {
    switch lifecycle {
    case .active?, nil: "active"
    case .deleted?: "deleted"
    case .merged?: "merged"
    }
}

extension TenantState {
    /// Schedule entries overlapping [from, to), planned or not, by start then ID.
    public func scheduleViews(from: Int64 = .min, to: Int64 = .max, assignee: String? = nil) -> [ScheduleView] {
        schedule.valueByKey.compactMap { id, entry -> (Int64, EntityID, ScheduleEntry)? in
            guard entry.isActive, let interval = entry.interval.value, interval.start < to, interval.end > from
            else { return nil }
            if let assignee, !entry.assignees.contains(assignee) { return nil }
            return (interval.start, id, entry)
        }
        .sorted { ($0.0, $0.1) < ($1.0, $1.1) }
        .map { ScheduleView($0.1, $0.2) }
    }

    /// Every entity as shown, for `export json`: active and deleted ones, by ID.
    public var exportView: ExportView {
        ExportView(
            contacts: contacts.sortedKeys.filter { contacts[$0]!.exists }.map { ContactView($0, contacts[$0]!) },
            notes: notes.sortedKeys.filter { notes[$0]!.exists }.map { NoteView($0, notes[$0]!) },
            schedule: schedule.sortedKeys.filter { schedule[$0]!.exists }.map { ScheduleView($0, schedule[$0]!) })
    }
}

/// Everything a replica holds, as `export json` writes it.
public struct ExportView: Codable, Equatable, Sendable {
    public let contacts: [ContactView]
    public let notes: [NoteView]
    public let schedule: [ScheduleView]
}
