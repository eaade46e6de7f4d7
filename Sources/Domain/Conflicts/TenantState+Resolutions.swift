import CRDT

extension TenantState {
    /// Resolves the open conflict `conflictID` with `resolution` and returns the delta.
    ///
    /// - Throws: ``ValidationError`` when there is no such open conflict, when the resolution
    ///   does not fit its kind (the message lists the ones that do), or when its input is invalid.
    ///   Nothing changes then.
    @discardableResult
    public mutating func resolve(
        _ conflictID: String, _ resolution: Resolution, _ context: WriteContext
    )
        throws(ValidationError) -> TenantState
    {
        guard let conflict = conflict(conflictID) else {
            throw ValidationError(
                field: "conflict", code: .unknownReference,
                message: "there is no open conflict \(conflictID) (it may have been resolved already)")
        }
        let target = conflict.entities[0]
        switch (conflict.kind, resolution) {
        case (.concurrentValues, .pick(let index)):
            return try pick(target, field: conflict.field!, index: index, sides: conflict.sides.count, context)
        case (.concurrentValues, .value(let text)) where conflict.field != "lifecycle":
            return try writeValue(target, field: conflict.field!, text: text, context)
        case (.concurrentValues, .restore) where conflict.field == "lifecycle",
            (.deleteVsEdit, .restore):
            return try restore(target.kind, target.id, context)
        case (.concurrentValues, .confirmDelete) where conflict.field == "lifecycle",
            (.deleteVsEdit, .confirmDelete):
            return try confirmDelete(target, context)
        case (.doubleBooking, .moveTo(let entry, let interval)):
            try checkInvolved(entry, conflict)
            return try moveScheduleEntry(entry, to: interval, context)
        case (.doubleBooking, .cancel(let entry)):
            try checkInvolved(entry, conflict)
            return try setScheduleStatus(entry, .cancelled, context)
        case (.doubleBooking, .accept):
            return acceptOverlap(conflict.entities[0].id, conflict.entities[1].id, context)
        case (.probableDuplicate, .mergeInto(let survivor)):
            try checkInvolved(survivor, conflict)
            let other = conflict.entities.map(\.id).first { $0 != survivor }!
            return try mergeContacts(other, into: survivor, context)
        case (.probableDuplicate, .notDuplicate):
            return markNotDuplicates(conflict.entities[0].id, conflict.entities[1].id, context)
        case (.orphanNote, .reattach(let contact)):
            return try reattach(target.id, to: contact, context)
        case (.orphanNote, .accept):
            return acceptOrphan(target.id, deletion: conflict.sides[1].stamp, context)
        default:
            throw ValidationError(
                field: "resolution", code: .notApplicable,
                message: "\(name(of: resolution)) does not resolve a \(conflict.kind.rawValue) conflict"
                    + (conflict.field == "lifecycle" ? " on deletion" : "") + "; use one of: "
                    + conflict.resolutions.joined(separator: ", "))
        }
    }

    private func name(of resolution: Resolution) -> String {
        switch resolution {
        case .pick: "pick"
        case .value: "value"
        case .restore: "restore"
        case .confirmDelete: "confirm-delete"
        case .mergeInto: "merge-into"
        case .notDuplicate: "not-duplicate"
        case .accept: "accept"
        case .moveTo: "move-to"
        case .cancel: "cancel"
        case .reattach: "reattach"
        }
    }

    private func checkInvolved(_ id: EntityID, _ conflict: Conflict) throws(ValidationError) {
        guard conflict.entities.contains(where: { $0.id == id }) else {
            throw ValidationError(
                field: "resolution", code: .notApplicable,
                message: "\(id) is not part of conflict \(conflict.id); choose one of "
                    + conflict.entities.map(\.id.text).joined(separator: ", "))
        }
    }

    private mutating func pick(
        _ target: EntityRef, field: String, index: Int, sides: Int, _ context: WriteContext
    )
        throws(ValidationError) -> TenantState
    {
        guard (0..<sides).contains(index) else {
            throw ValidationError(
                field: "pick", code: .outOfRange, message: "pick \(index + 1) is not a side; choose 1 to \(sides)")
        }
        func rewrite<E: Entity>(_ map: ORMap<EntityID, E>) -> ORMap<EntityID, E>? {
            guard var entity = map[target.id] else { return nil }
            for descriptor in E.fields {
                if var delta = descriptor.rewriteSibling(&entity, field, index, context.stamp) {
                    delta.authors = entity.authors.record(context.author, at: context.stamp)
                    return ORMap([target.id: delta])
                }
            }
            return nil
        }
        var delta = TenantState()
        switch target.kind {
        case .contact: delta.contacts = rewrite(contacts) ?? ORMap()
        case .note: delta.notes = rewrite(notes) ?? ORMap()
        case .schedule: delta.schedule = rewrite(schedule) ?? ORMap()
        }
        return apply(delta)
    }

    private mutating func writeValue(
        _ target: EntityRef, field: String, text: String, _ context: WriteContext
    )
        throws(ValidationError) -> TenantState
    {
        switch (target.kind, field) {
        case (.contact, _):
            var edit = ContactEdit()
            switch field {
            case "name": edit.name = text
            case "company": edit.company = text
            case "title": edit.title = text
            case "owner": edit.owner = text
            case "status": edit.status = text
            case "address": edit.address = text
            case let custom where custom.hasPrefix("field."): edit.customFields = [String(custom.dropFirst(6)): text]
            default: throw notByValue(field)
            }
            return try editContact(target.id, edit, context)
        case (.note, "body"):
            return try editNote(target.id, text: text, context)
        case (.schedule, "title"), (.schedule, "location"):
            var entry = try activeEntry(target.id)
            let limits = context.settings.limits
            let value = try validatedText(
                text, field: field, limit: field == "title" ? limits.shortText : limits.address,
                required: field == "title")
            var delta = ScheduleEntry()
            delta.authors = entry.authors.record(context.author, at: context.stamp)
            if field == "title" {
                delta.title = entry.title.write(value, at: context.stamp)
            } else {
                delta.location = entry.location.write(value, at: context.stamp)
            }
            return apply(change(target.id, delta))
        case (.schedule, "status"):
            return try setScheduleStatus(target.id, ScheduleStatus(parsing: text), context)
        default:
            throw notByValue(field)
        }
    }

    private func notByValue(_ field: String) -> ValidationError {
        ValidationError(
            field: "value", code: .notApplicable,
            message: "\(field) cannot be set from text here; pick one of the sides, or use the command that edits it")
    }

    private mutating func confirmDelete(
        _ target: EntityRef, _ context: WriteContext
    ) throws(ValidationError) -> TenantState {
        try setLifecycle(target.kind, target.id, context) { entity throws(ValidationError) in
            if case .merged(let into, _)? = entity.lifecycle.value {
                return .merged(into: into, seen: entity.knowledge)
            }
            return .deleted(seen: entity.knowledge)
        }
    }

    private mutating func acceptOverlap(_ first: EntityID, _ second: EntityID, _ context: WriteContext) -> TenantState {
        var a = schedule[first]!
        var b = schedule[second]!
        let acceptance = OverlapAcceptance(
            first: first, second: second, firstInterval: a.interval.stamp!, secondInterval: b.interval.stamp!)
        var deltaA = ScheduleEntry()
        deltaA.authors = a.authors.record(context.author, at: context.stamp)
        deltaA.acceptedOverlaps = a.acceptedOverlaps.insert(acceptance, at: context.stamp)
        var deltaB = ScheduleEntry()
        deltaB.authors = b.authors.record(context.author, at: context.stamp)
        deltaB.acceptedOverlaps = b.acceptedOverlaps.insert(acceptance, at: context.stamp)
        var delta = TenantState()
        delta.schedule = ORMap([first: deltaA, second: deltaB])
        return apply(delta)
    }

    /// Merges contact `other` into `survivor`: phones, e-mails and tags are united on the
    /// survivor, the other's notes and schedule entries move to it, the other is tombstoned as
    /// merged into it, and the survivor's lifecycle is written `active` again, so a concurrent
    /// merge the other way round shows as a conflict instead of losing both.
    public mutating func mergeContacts(
        _ other: EntityID, into survivor: EntityID, _ context: WriteContext
    )
        throws(ValidationError) -> TenantState
    {
        guard other != survivor else {
            throw ValidationError(
                field: "merge-into", code: .notApplicable, message: "a contact cannot be merged into itself")
        }
        var kept = try activeContact(survivor, field: "merge-into")
        var gone = try activeContact(other, field: "contact")
        let limits = context.settings.limits
        try checkCount(Set(kept.phones.elements + gone.phones.elements).count, "phone", limits)
        try checkCount(Set(kept.emails.elements + gone.emails.elements).count, "email", limits)
        try checkCount(Set(kept.tags.elements + gone.tags.elements).count, "tag", limits)
        let stamp = context.stamp

        var keptDelta = Contact()
        keptDelta.authors = kept.authors.record(context.author, at: stamp)
        for phone in gone.phones.elements where !kept.phones.contains(phone) {
            keptDelta.phones.merge(kept.phones.insert(phone, at: stamp))
        }
        for email in gone.emails.elements where !kept.emails.contains(email) {
            keptDelta.emails.merge(kept.emails.insert(email, at: stamp))
        }
        for tag in gone.tags.elements where !kept.tags.contains(tag) {
            keptDelta.tags.merge(kept.tags.insert(tag, at: stamp))
        }
        keptDelta.lifecycle = kept.lifecycle.write(.active, at: stamp)
        var goneDelta = Contact()
        goneDelta.authors = gone.authors.record(context.author, at: stamp)
        goneDelta.lifecycle = gone.lifecycle.write(.merged(into: survivor, seen: gone.knowledge), at: stamp)

        var delta = TenantState()
        delta.contacts = ORMap([survivor: keptDelta, other: goneDelta])
        var movedNotes = [EntityID: CallNote]()
        for (id, note) in notes.valueByKey where note.isActive && note.contact.value?.id == other {
            var note = note
            var noteDelta = CallNote()
            noteDelta.authors = note.authors.record(context.author, at: stamp)
            noteDelta.contact = note.contact.write(Reference(survivor), at: stamp)
            movedNotes[id] = noteDelta
        }
        delta.notes = ORMap(movedNotes)
        var movedEntries = [EntityID: ScheduleEntry]()
        for (id, entry) in schedule.valueByKey where entry.isActive && entry.contact.value?.id == other {
            var entry = entry
            var entryDelta = ScheduleEntry()
            entryDelta.authors = entry.authors.record(context.author, at: stamp)
            entryDelta.contact = entry.contact.write(Reference(survivor), at: stamp)
            movedEntries[id] = entryDelta
        }
        delta.schedule = ORMap(movedEntries)
        return apply(delta)
    }

    /// Records that two contacts are different people, on both, and writes both lifecycles
    /// `active`, so a concurrent merge of the two shows as a conflict.
    private mutating func markNotDuplicates(_ a: EntityID, _ b: EntityID, _ context: WriteContext) -> TenantState {
        var first = contacts[a]!
        var second = contacts[b]!
        var deltaA = Contact()
        deltaA.authors = first.authors.record(context.author, at: context.stamp)
        deltaA.notDuplicateOf = first.notDuplicateOf.insert(b, at: context.stamp)
        deltaA.lifecycle = first.lifecycle.write(.active, at: context.stamp)
        var deltaB = Contact()
        deltaB.authors = second.authors.record(context.author, at: context.stamp)
        deltaB.notDuplicateOf = second.notDuplicateOf.insert(a, at: context.stamp)
        deltaB.lifecycle = second.lifecycle.write(.active, at: context.stamp)
        var delta = TenantState()
        delta.contacts = ORMap([a: deltaA, b: deltaB])
        return apply(delta)
    }

    private mutating func reattach(
        _ noteID: EntityID, to contact: EntityID, _ context: WriteContext
    )
        throws(ValidationError) -> TenantState
    {
        _ = try activeContact(contact, field: "reattach")
        var note = notes[noteID]!
        var delta = CallNote()
        delta.authors = note.authors.record(context.author, at: context.stamp)
        delta.contact = note.contact.write(Reference(contact), at: context.stamp)
        return apply(change(noteID, delta))
    }

    private mutating func acceptOrphan(_ noteID: EntityID, deletion: HLC, _ context: WriteContext) -> TenantState {
        var note = notes[noteID]!
        var delta = CallNote()
        delta.authors = note.authors.record(context.author, at: context.stamp)
        delta.orphanAccepted = note.orphanAccepted.write(deletion, at: context.stamp)
        return apply(change(noteID, delta))
    }
}
