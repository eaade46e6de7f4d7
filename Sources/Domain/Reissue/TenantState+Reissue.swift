import CRDT

/// The part of a change a re-issue did not make, and why; a person decides what to do with it.
public struct LeftOutChange: Hashable, Sendable, Codable {
    public enum Reason: String, Hashable, Sendable, Codable {
        /// The entity (or the contact a new note or entry points at) is not in this replica:
        /// deleted and collected on the server, or never synced here.
        case missing
        /// The entity (or the contact pointed at) is deleted or merged away here; a re-issue
        /// never brings deleted data back.
        case deleted
        /// No command makes this change (a conflict decision, a merge, a field such as a
        /// schedule entry's title that only a conflict resolution writes).
        case noCommand = "no-command"
    }

    /// What was left out: the entity, as the refused change named it, and the values.
    public let change: EntityChange
    public let reason: Reason
    /// A plain sentence (English, like validation messages).
    public let detail: String
}

/// What ``TenantState/reissue(_:ids:context:)`` did with one change.
public struct Reissue: Sendable {
    /// The changes of the commands it ran, in order, one per command (each its own outbox entry).
    public var deltas = [TenantState]()
    /// Old ID → new ID of every entity it created again.
    public var created = [EntityID: EntityID]()
    public var leftOut = [LeftOutChange]()

    mutating func record(_ delta: TenantState) {
        if !delta.isBottom { deltas.append(delta) }
    }

    /// Records a creation made again: its change, and its new ID for the old one.
    @discardableResult
    mutating func created(_ old: EntityID, _ made: TenantState, _ ids: inout [EntityID: EntityID]) -> EntityID {
        let new = (made.contacts.sortedKeys + made.notes.sortedKeys + made.schedule.sortedKeys)[0]
        ids[old] = new
        created[old] = new
        record(made)
        return new
    }

    mutating func leaveOut(
        _ entity: EntityChange, _ fields: [FieldChange]?, _ reason: LeftOutChange.Reason, _ detail: String
    ) {
        let change = EntityChange(
            kind: entity.kind, id: entity.id, action: entity.action, fields: fields ?? entity.fields)
        leftOut.append(LeftOutChange(change: change, reason: reason, detail: detail))
    }

    /// Leaves out the field changes no command makes (by field name; `field.KEY` counts as
    /// `field`) and returns the others.
    @discardableResult
    mutating func leaveOutUnsupported(_ entity: EntityChange, _ supported: Set<String>) -> [FieldChange] {
        let isSupported = { (change: FieldChange) in supported.contains(String(change.field.prefix { $0 != "." })) }
        let other = entity.fields.filter { !isSupported($0) }
        if !other.isEmpty {
            leaveOut(
                entity, other, .noCommand, "no command makes this change again; make it by hand if it still matters")
        }
        return entity.fields.filter(isSupported)
    }
}

extension TenantState {
    /// Makes the values `change` wrote again, as new commands stamped by `context()` (one fresh
    /// context per command): creations become creations with new IDs (recorded in `ids`, old →
    /// new, so later changes that point at them are rewritten), field edits edit the fields the
    /// change touched with its values, set additions and removals become the same additions and
    /// removals, deletions become deletions.
    ///
    /// Used to re-enter changes the server refused (a clock a year ahead, an edit of a record
    /// collected since), from a fresh replica with a correct clock. An edit whose entity is not
    /// here, or is deleted here, is not made: it is returned in ``Reissue/leftOut`` with its
    /// values, and so is what no command can make. Deleted data never comes back this way.
    ///
    /// - Throws: ``ValidationError`` when a re-made command is refused (the limits of this
    ///   replica differ); the commands run before it have changed `self`, so callers run this on
    ///   a copy and keep it only when every change succeeded.
    public mutating func reissue(
        _ change: TenantState, ids: inout [EntityID: EntityID], context: () -> WriteContext
    ) throws(ValidationError) -> Reissue {
        var result = Reissue()
        for (old, delta) in change.contacts.valueByKey.sorted(by: { $0.key < $1.key }) {
            let entity = Self.describe(old, delta)
            if entity.action == .create {
                result.leaveOutUnsupported(entity, Self.contactFields)
                let draft = ContactDraft(
                    name: delta.name.value ?? "", company: delta.company.value, title: delta.title.value,
                    owner: delta.owner.value, status: delta.status.value?.rawValue, address: delta.address.value,
                    phones: delta.phones.elements, emails: delta.emails.elements, tags: delta.tags.elements,
                    customFields: delta.customFields.valueByKey.compactMapValues(\.value))
                result.created(old, try createContact(draft, context()), &ids)
                continue
            }
            let id = ids[old] ?? old
            guard try editable(entity, id, contacts[id], Self.contactFields, &result, context) else { continue }
            var edit = ContactEdit()
            edit.name = delta.name.value
            edit.company = delta.company.value
            edit.title = delta.title.value
            edit.owner = delta.owner.value
            edit.status = delta.status.value?.rawValue
            edit.address = delta.address.value
            (edit.addPhones, edit.removePhones) = Self.additionsAndRemovals(delta.phones)
            (edit.addEmails, edit.removeEmails) = Self.additionsAndRemovals(delta.emails)
            (edit.addTags, edit.removeTags) = Self.additionsAndRemovals(delta.tags)
            // An empty value removes a custom field, as on the command line.
            edit.customFields = delta.customFields.valueByKey.mapValues { $0.value ?? "" }
            result.record(try editContact(id, edit, context()))
        }
        for (old, delta) in change.notes.valueByKey.sorted(by: { $0.key < $1.key }) {
            let entity = Self.describe(old, delta)
            if entity.action == .create {
                result.leaveOutUnsupported(entity, Self.noteCreationFields)
                guard let contact = delta.contact.value?.id.map({ ids[$0] ?? $0 }) else {
                    result.leaveOut(entity, nil, .missing, "the note points at no contact")
                    continue
                }
                if let reason = referenceProblem(contact) {
                    result.leaveOut(entity, nil, reason, Self.reference(contact, reason))
                    continue
                }
                let write = context()
                // A call that already happened cannot lie after this (correct) clock: such a time
                // came from the old replica's clock running ahead (a note's default call time is
                // its write's time), so the note takes the re-issue's time instead.
                let callTime = delta.callTime.value.flatMap { $0 > Int64(write.stamp.physical) ? nil : $0 }
                let draft = NoteDraft(
                    contact: contact, text: delta.body.value ?? "", callTime: callTime,
                    durationSeconds: delta.duration.value, direction: delta.direction.value?.rawValue,
                    outcome: delta.outcome.value?.rawValue, tags: delta.tags.elements)
                result.created(old, try addNote(draft, write), &ids)
                continue
            }
            let id = ids[old] ?? old
            guard try editable(entity, id, notes[id], ["body"], &result, context) else { continue }
            if let body = delta.body.value { result.record(try editNote(id, text: body, context())) }
        }
        for (old, delta) in change.schedule.valueByKey.sorted(by: { $0.key < $1.key }) {
            let entity = Self.describe(old, delta)
            if entity.action == .create {
                result.leaveOutUnsupported(entity, Self.entryCreationFields)
                let contact = delta.contact.value?.id.map { ids[$0] ?? $0 }
                if let contact, let reason = referenceProblem(contact) {
                    result.leaveOut(entity, nil, reason, Self.reference(contact, reason))
                    continue
                }
                let interval = delta.interval.value
                let draft = ScheduleDraft(
                    title: delta.title.value ?? "", start: interval?.start ?? 0, end: interval?.end ?? 0,
                    timeZone: interval?.timeZone ?? "", kind: delta.entryKind.value?.rawValue,
                    assignees: delta.assignees.elements, contact: contact, location: delta.location.value)
                let new = result.created(old, try addScheduleEntry(draft, context()), &ids)
                // A new entry is planned; the refused one may have been marked done at once.
                if let status = delta.status.value, status != .planned {
                    result.record(try setScheduleStatus(new, status, context()))
                }
                continue
            }
            let id = ids[old] ?? old
            guard try editable(entity, id, schedule[id], ["interval", "status"], &result, context) else { continue }
            if let interval = delta.interval.value { result.record(try moveScheduleEntry(id, to: interval, context())) }
            if let status = delta.status.value { result.record(try setScheduleStatus(id, status, context())) }
        }
        return result
    }

    /// For a change that is not a creation: leaves out the fields no command makes, re-makes a
    /// deletion, leaves out what cannot be made (the entity missing or deleted here, a restore, a
    /// merge). Returns whether the `supported` field edits are to be made (the entity is active).
    private mutating func editable<E: Entity>(
        _ entity: EntityChange, _ id: EntityID, _ target: E?, _ supported: Set<String>, _ result: inout Reissue,
        _ context: () -> WriteContext
    ) throws(ValidationError) -> Bool {
        let edits = result.leaveOutUnsupported(entity, supported)
        guard let target, target.exists else {
            result.leaveOut(entity, nil, .missing, Self.missing(entity.kind, id))
            return false
        }
        switch entity.action {
        case .delete where target.isActive:
            result.record(try delete(entity.kind, id, context()))
            return false
        case .delete:
            result.leaveOut(entity, nil, .deleted, "\(entity.kind) \(id) is already deleted here; nothing to do")
            return false
        case .merge:
            result.leaveOut(
                entity, [], .noCommand, "a merge of duplicates is not re-issued; resolve the duplicate again")
            return false
        case .restore where !target.isActive:
            // Bringing a deleted record back is a person's decision, not a replay's.
            result.leaveOut(entity, nil, .deleted, Self.deletedHere(entity.kind, id, restore: true))
            return false
        case .edit where !target.isActive && !edits.isEmpty:
            result.leaveOut(entity, nil, .deleted, Self.deletedHere(entity.kind, id, restore: false))
            return false
        default:
            return target.isActive && !edits.isEmpty
        }
    }

    /// Why a new note or entry cannot point at contact `id` here, or `nil` when it can.
    private func referenceProblem(_ id: EntityID) -> LeftOutChange.Reason? {
        guard let contact = contacts[id], contact.exists else { return .missing }
        return contact.isActive ? nil : .deleted
    }

    static let contactFields: Set<String> = [
        "name", "company", "title", "owner", "status", "address", "field", "phones", "emails", "tags",
    ]
    static let noteCreationFields: Set<String> = [
        "contact", "author", "call-time", "duration", "direction", "outcome", "tags", "body",
    ]
    static let entryCreationFields: Set<String> = [
        "kind", "title", "interval", "assignees", "contact", "location", "status",
    ]

    static func additionsAndRemovals(_ set: ORSet<String>) -> ([String], [String]) {
        (
            set.entries.filter { !$0.kernel.isEmpty }.map(\.element),
            set.entries.filter { $0.kernel.isEmpty }.map(\.element)
        )
    }

    static func missing(_ kind: EntityKind, _ id: EntityID) -> String {
        "\(kind) \(id) does not exist in this replica (deleted and collected on the server, or never synced here); "
            + "its values are listed so a person can decide"
    }

    static func deletedHere(_ kind: EntityKind, _ id: EntityID, restore: Bool) -> String {
        "\(kind) \(id) is deleted here; "
            + (restore ? "restore it by hand if it should come back" : "restore it first if the edit should stand")
    }

    static func reference(_ contact: EntityID, _ reason: LeftOutChange.Reason) -> String {
        "its contact \(contact) " + (reason == .missing ? "does not exist in this replica" : "is deleted here")
            + "; re-enter it on another contact, or restore that one first"
    }
}
