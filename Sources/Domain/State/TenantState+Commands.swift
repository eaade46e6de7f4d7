import CRDT

// Commands. Each validates everything first (throwing `ValidationError` and changing nothing),
// then makes its writes with the one stamp of its `WriteContext` and returns the delta.

extension TenantState {
    // MARK: Lookups

    public func contact(_ id: EntityID) -> Contact? { contacts[id].flatMap { $0.exists ? $0 : nil } }
    public func note(_ id: EntityID) -> CallNote? { notes[id].flatMap { $0.exists ? $0 : nil } }
    public func scheduleEntry(_ id: EntityID) -> ScheduleEntry? { schedule[id].flatMap { $0.exists ? $0 : nil } }

    /// The contact `id`, which must exist and not be deleted.
    func activeContact(_ id: EntityID, field: String) throws(ValidationError) -> Contact {
        guard let contact = contact(id) else {
            throw ValidationError(field: field, code: .unknownReference, message: "there is no contact \(id)")
        }
        guard contact.isActive else {
            throw ValidationError(
                field: field, code: .deletedReference,
                message: "contact \(id) is \(contact.lifecycle.value?.display ?? "deleted"); restore it first")
        }
        return contact
    }

    // MARK: Contacts

    /// Creates a contact; its ID is `EntityID(creation: context.stamp)`.
    @discardableResult
    public mutating func createContact(
        _ draft: ContactDraft, _ context: WriteContext
    ) throws(ValidationError) -> TenantState {
        let limits = context.settings.limits
        let name = try validatedText(draft.name, field: "name", limit: limits.shortText, required: true)
        let company = try draft.company.map { text throws(ValidationError) in
            try validatedText(text, field: "company", limit: limits.shortText)
        }
        let title = try draft.title.map { text throws(ValidationError) in
            try validatedText(text, field: "title", limit: limits.shortText)
        }
        let owner = try validatedText(
            draft.owner ?? context.author.user, field: "owner", limit: limits.shortText, required: true)
        let status = try draft.status.map { text throws(ValidationError) in try ContactStatus(parsing: text) } ?? .lead
        let address = try draft.address.map { text throws(ValidationError) in
            try validatedText(text, field: "address", limit: limits.address)
        }
        let phones = try normalizedPhones(draft.phones, context.settings)
        let emails = try normalizedEmails(draft.emails, limits)
        let tags = try validatedTags(draft.tags, field: "tag", limits)
        let custom = try validatedCustomFields(draft.customFields, limits)
        let id = EntityID(creation: context.stamp)
        guard contacts[id] == nil else {
            preconditionFailure("stamp \(context.stamp) was used twice to create an entity")
        }

        let stamp = context.stamp
        var contact = Contact()
        contact.lifecycle.write(.active, at: stamp)
        contact.authors.record(context.author, at: stamp)
        contact.name.write(name, at: stamp)
        if let company, !company.isEmpty { contact.company.write(company, at: stamp) }
        if let title, !title.isEmpty { contact.title.write(title, at: stamp) }
        contact.owner.write(owner, at: stamp)
        contact.status.write(status, at: stamp)
        if let address, !address.isEmpty { contact.address.write(address, at: stamp) }
        for phone in phones { contact.phones.insert(phone, at: stamp) }
        for email in emails { contact.emails.insert(email, at: stamp) }
        for tag in tags { contact.tags.insert(tag, at: stamp) }
        for (key, value) in custom where !value.isEmpty {
            contact.customFields.update(key) { $0.write(value, at: stamp) }
        }
        return apply(change(id, contact))
    }

    /// Edits a contact that exists and is not deleted.
    @discardableResult
    public mutating func editContact(
        _ id: EntityID, _ edit: ContactEdit, _ context: WriteContext
    ) throws(ValidationError)
        -> TenantState
    {
        let limits = context.settings.limits
        var contact = try activeContact(id, field: "id")
        let name = try edit.name.map { text throws(ValidationError) in
            try validatedText(text, field: "name", limit: limits.shortText, required: true)
        }
        let company = try edit.company.map { text throws(ValidationError) in
            try validatedText(text, field: "company", limit: limits.shortText)
        }
        let title = try edit.title.map { text throws(ValidationError) in
            try validatedText(text, field: "title", limit: limits.shortText)
        }
        let owner = try edit.owner.map { text throws(ValidationError) in
            try validatedText(text, field: "owner", limit: limits.shortText, required: true)
        }
        let status = try edit.status.map { text throws(ValidationError) in try ContactStatus(parsing: text) }
        let address = try edit.address.map { text throws(ValidationError) in
            try validatedText(text, field: "address", limit: limits.address)
        }
        let addPhones = try normalizedPhones(edit.addPhones, context.settings)
        let removePhones = try normalizedPhones(edit.removePhones, context.settings)
        let addEmails = try normalizedEmails(edit.addEmails, limits)
        let removeEmails = try normalizedEmails(edit.removeEmails, limits)
        let addTags = try validatedTags(edit.addTags, field: "tag", limits)
        let removeTags = try validatedTags(edit.removeTags, field: "tag", limits)
        let custom = try validatedCustomFields(edit.customFields, limits)
        try checkCount(Set(contact.phones.elements).union(addPhones).subtracting(removePhones).count, "phone", limits)
        try checkCount(Set(contact.emails.elements).union(addEmails).subtracting(removeEmails).count, "email", limits)
        try checkCount(Set(contact.tags.elements).union(addTags).subtracting(removeTags).count, "tag", limits)
        let keys = Set(contact.customFields.valueByKey.filter { !$0.value.values.isEmpty }.keys)
        try checkCount(
            keys.union(custom.filter { !$0.value.isEmpty }.keys).subtracting(custom.filter { $0.value.isEmpty }.keys)
                .count,
            "field", limits, limit: limits.customFields)

        let stamp = context.stamp
        var delta = Contact()
        delta.authors = contact.authors.record(context.author, at: stamp)
        if let name, contact.name.values != [name] { delta.name = contact.name.write(name, at: stamp) }
        if let company, contact.company.values != [company] {
            delta.company = contact.company.write(company, at: stamp)
        }
        if let title, contact.title.values != [title] { delta.title = contact.title.write(title, at: stamp) }
        if let owner, contact.owner.values != [owner] { delta.owner = contact.owner.write(owner, at: stamp) }
        if let status, contact.status.values != [status] { delta.status = contact.status.write(status, at: stamp) }
        if let address, contact.address.values != [address] {
            delta.address = contact.address.write(address, at: stamp)
        }
        for phone in removePhones { delta.phones.merge(contact.phones.remove(phone)) }
        for phone in addPhones where !contact.phones.contains(phone) {
            delta.phones.merge(contact.phones.insert(phone, at: stamp))
        }
        for email in removeEmails { delta.emails.merge(contact.emails.remove(email)) }
        for email in addEmails where !contact.emails.contains(email) {
            delta.emails.merge(contact.emails.insert(email, at: stamp))
        }
        for tag in removeTags { delta.tags.merge(contact.tags.remove(tag)) }
        for tag in addTags where !contact.tags.contains(tag) { delta.tags.merge(contact.tags.insert(tag, at: stamp)) }
        for (key, value) in custom.sorted(by: { $0.key < $1.key }) {
            if value.isEmpty {
                delta.customFields.merge(contact.customFields.remove(key))
            } else if contact.customFields[key]?.values != [value] {
                delta.customFields.merge(contact.customFields.update(key) { $0.write(value, at: stamp) })
            }
        }
        return apply(change(id, delta))
    }

    // MARK: Call notes

    /// Adds a note to an existing, not deleted contact.
    @discardableResult
    public mutating func addNote(_ draft: NoteDraft, _ context: WriteContext) throws(ValidationError) -> TenantState {
        let limits = context.settings.limits
        _ = try activeContact(draft.contact, field: "contact")
        let text = try validatedText(draft.text, field: "text", limit: limits.noteBody, required: true)
        let direction =
            try draft.direction.map { text throws(ValidationError) in try CallDirection(parsing: text) } ?? .outbound
        let outcome =
            try draft.outcome.map { text throws(ValidationError) in try CallOutcome(parsing: text) } ?? .reached
        if let duration = draft.durationSeconds, duration > limits.maxCallDuration {
            throw ValidationError(
                field: "duration", code: .outOfRange,
                message: "duration \(duration) s is longer than \(limits.maxCallDuration) s")
        }
        let tags = try validatedTags(draft.tags, field: "tag", limits)
        let stamp = context.stamp
        var note = CallNote()
        note.lifecycle.write(.active, at: stamp)
        note.authors.record(context.author, at: stamp)
        note.contact.write(Reference(draft.contact), at: stamp)
        note.author.write(context.author.user, at: stamp)
        note.callTime.write(draft.callTime ?? Int64(stamp.physical), at: stamp)
        note.duration.write(draft.durationSeconds ?? 0, at: stamp)
        note.direction.write(direction, at: stamp)
        note.outcome.write(outcome, at: stamp)
        for tag in tags { note.tags.insert(tag, at: stamp) }
        note.body.write(text, at: stamp)
        return apply(change(EntityID(creation: stamp), note))
    }

    /// Replaces the body of a note.
    @discardableResult
    public mutating func editNote(
        _ id: EntityID, text: String, _ context: WriteContext
    ) throws(ValidationError) -> TenantState {
        guard var note = note(id), note.isActive else {
            throw ValidationError(
                field: "id", code: .unknownReference, message: "there is no note \(id) (or it was deleted)")
        }
        let text = try validatedText(text, field: "text", limit: context.settings.limits.noteBody, required: true)
        var delta = CallNote()
        delta.authors = note.authors.record(context.author, at: context.stamp)
        delta.body = note.body.write(text, at: context.stamp)
        return apply(change(id, delta))
    }

    // MARK: Schedule

    /// Adds a schedule entry; the interval is validated as one value.
    @discardableResult
    public mutating func addScheduleEntry(
        _ draft: ScheduleDraft, _ context: WriteContext
    ) throws(ValidationError)
        -> TenantState
    {
        let limits = context.settings.limits
        let title = try validatedText(draft.title, field: "title", limit: limits.shortText, required: true)
        let interval = try Interval(start: draft.start, end: draft.end, timeZone: draft.timeZone, limits: limits)
        let kind =
            try draft.kind.map { text throws(ValidationError) in try ScheduleKind(parsing: text) } ?? .appointment
        let assignees = try validatedTags(
            draft.assignees.isEmpty ? [context.author.user] : draft.assignees, field: "assignee", limits)
        if let contact = draft.contact { _ = try activeContact(contact, field: "contact") }
        let location = try draft.location.map { text throws(ValidationError) in
            try validatedText(text, field: "location", limit: limits.address)
        }
        let stamp = context.stamp
        var entry = ScheduleEntry()
        entry.lifecycle.write(.active, at: stamp)
        entry.authors.record(context.author, at: stamp)
        entry.entryKind.write(kind, at: stamp)
        entry.title.write(title, at: stamp)
        entry.interval.write(interval, at: stamp)
        for assignee in assignees { entry.assignees.insert(assignee, at: stamp) }
        entry.contact.write(Reference(draft.contact), at: stamp)
        if let location, !location.isEmpty { entry.location.write(location, at: stamp) }
        entry.status.write(.planned, at: stamp)
        return apply(change(EntityID(creation: stamp), entry))
    }

    /// Moves an entry to a new interval (one write: start, end and zone together).
    @discardableResult
    public mutating func moveScheduleEntry(
        _ id: EntityID, to interval: Interval, _ context: WriteContext
    )
        throws(ValidationError) -> TenantState
    {
        var entry = try activeEntry(id)
        var delta = ScheduleEntry()
        delta.authors = entry.authors.record(context.author, at: context.stamp)
        delta.interval = entry.interval.write(interval, at: context.stamp)
        return apply(change(id, delta))
    }

    /// Marks an entry done or cancelled (or planned again).
    @discardableResult
    public mutating func setScheduleStatus(
        _ id: EntityID, _ status: ScheduleStatus, _ context: WriteContext
    )
        throws(ValidationError) -> TenantState
    {
        var entry = try activeEntry(id)
        var delta = ScheduleEntry()
        delta.authors = entry.authors.record(context.author, at: context.stamp)
        delta.status = entry.status.write(status, at: context.stamp)
        return apply(change(id, delta))
    }

    func activeEntry(_ id: EntityID) throws(ValidationError) -> ScheduleEntry {
        guard let entry = scheduleEntry(id), entry.isActive else {
            throw ValidationError(
                field: "id", code: .unknownReference, message: "there is no schedule entry \(id) (or it was deleted)")
        }
        return entry
    }

    /// The change that holds `delta` for entity `id` (empty when `delta` is bottom).
    func change<E: Entity>(_ id: EntityID, _ delta: E) -> TenantState {
        var state = TenantState()
        guard !delta.isBottom else { return state }
        switch delta {
        case let contact as Contact: state.contacts = ORMap([id: contact])
        case let note as CallNote: state.notes = ORMap([id: note])
        case let entry as ScheduleEntry: state.schedule = ORMap([id: entry])
        default: preconditionFailure("\(E.self) is not an entity of a tenant")
        }
        return state
    }

    // MARK: Delete and restore

    /// Deletes an entity: a write of `deleted` that records everything this replica had seen of
    /// it, so edits it had not seen show up as a delete-vs-edit conflict.
    @discardableResult
    public mutating func delete(
        _ kind: EntityKind, _ id: EntityID, _ context: WriteContext
    ) throws(ValidationError)
        -> TenantState
    {
        try setLifecycle(kind, id, context) { entity throws(ValidationError) in
            guard entity.isActive else {
                throw ValidationError(
                    field: "id", code: .notApplicable,
                    message: "\(kind) \(id) is already \(entity.lifecycle.value?.display ?? "deleted")")
            }
            return .deleted(seen: entity.knowledge)
        }
    }

    /// Restores a deleted entity.
    @discardableResult
    public mutating func restore(
        _ kind: EntityKind, _ id: EntityID, _ context: WriteContext
    ) throws(ValidationError)
        -> TenantState
    {
        try setLifecycle(kind, id, context) { entity throws(ValidationError) in
            guard !(entity.isActive && !entity.lifecycle.hasConflict) else {
                throw ValidationError(field: "id", code: .notApplicable, message: "\(kind) \(id) is not deleted")
            }
            return .active
        }
    }

    mutating func setLifecycle(
        _ kind: EntityKind, _ id: EntityID, _ context: WriteContext,
        _ next: (any Entity) throws(ValidationError) -> Lifecycle
    ) throws(ValidationError) -> TenantState {
        func update<E: Entity>(_ map: ORMap<EntityID, E>) throws(ValidationError) -> ORMap<EntityID, E> {
            guard var entity = map[id], entity.exists else {
                throw ValidationError(field: "id", code: .unknownReference, message: "there is no \(kind) \(id)")
            }
            let lifecycle = try next(entity)
            var delta = E()
            delta.authors = entity.authors.record(context.author, at: context.stamp)
            delta.lifecycle = entity.lifecycle.write(lifecycle, at: context.stamp)
            return ORMap([id: delta])
        }
        var delta = TenantState()
        switch kind {
        case .contact: delta.contacts = try update(contacts)
        case .note: delta.notes = try update(notes)
        case .schedule: delta.schedule = try update(schedule)
        }
        return apply(delta)
    }

    // MARK: Validation helpers

    func normalizedPhones(_ phones: [String], _ settings: DomainSettings) throws(ValidationError) -> [String] {
        var result = [String]()
        for phone in phones {
            let normalized = try PhoneNumber.normalize(phone, defaultCountry: settings.defaultCountry)
            if !result.contains(normalized) { result.append(normalized) }
        }
        try checkCount(result.count, "phone", settings.limits)
        return result
    }

    func normalizedEmails(_ emails: [String], _ limits: Limits) throws(ValidationError) -> [String] {
        var result = [String]()
        for email in emails {
            let normalized = try EmailAddress.normalize(email)
            if !result.contains(normalized) { result.append(normalized) }
        }
        try checkCount(result.count, "email", limits)
        return result
    }

    func validatedTags(_ tags: [String], field: String, _ limits: Limits) throws(ValidationError) -> [String] {
        var result = [String]()
        for tag in tags {
            let text = try validatedText(tag, field: field, limit: limits.tag, required: true)
            if !result.contains(text) { result.append(text) }
        }
        try checkCount(result.count, field, limits)
        return result
    }

    func validatedCustomFields(_ fields: [String: String], _ limits: Limits) throws(ValidationError) -> [String: String]
    {
        var result = [String: String]()
        for (key, value) in fields {
            let field = "field.\(key)"
            let allowed = key.unicodeScalars.allSatisfy {
                ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "-" || $0 == "_" || $0 == "."
            }
            guard !key.isEmpty, key.count <= limits.customFieldKey, allowed else {
                throw ValidationError(
                    field: field, code: .invalidFormat,
                    message:
                        "custom field name \"\(key)\" must be 1 to \(limits.customFieldKey) characters of a-z, 0-9, - _ ."
                )
            }
            result[key] = try validatedText(value, field: field, limit: limits.customFieldValue)
        }
        try checkCount(result.count, "field", limits, limit: limits.customFields)
        return result
    }

    func checkCount(_ count: Int, _ field: String, _ limits: Limits, limit: Int? = nil) throws(ValidationError) {
        let limit = limit ?? limits.setElements
        if count > limit {
            throw ValidationError(
                field: field, code: .tooMany,
                message: "a record can hold at most \(limit) \(field) values; this would make \(count)")
        }
    }
}
