import CRDT

/// A person or company the call centre talks to.
///
/// Scalar fields are multi-value registers (concurrent edits are kept and listed as conflicts);
/// phones, e-mails and tags are add-wins sets of normalized values; custom fields are a map of
/// registers. `notDuplicateOf` records "these are not duplicates" decisions.
public struct Contact: Entity {
    public static let kind = EntityKind.contact

    public var lifecycle = MVRegister<Lifecycle>()
    public var authors = Authors()
    public var name = MVRegister<String>()
    public var company = MVRegister<String>()
    public var title = MVRegister<String>()
    public var owner = MVRegister<String>()
    public var status = MVRegister<ContactStatus>()
    public var address = MVRegister<String>()
    public var customFields = ORMap<String, MVRegister<String>>()
    public var phones = ORSet<String>()
    public var emails = ORSet<String>()
    public var tags = ORSet<String>()
    public var notDuplicateOf = ORSet<EntityID>()

    public init() {}

    public static let fields: [FieldDescriptor<Contact>] = [
        .field("lifecycle", { $0.lifecycle }, { $1(&$0.lifecycle) }, content: false),
        .field("authors", { $0.authors }, { $1(&$0.authors) }, content: false),
        .field("name", { $0.name }, { $1(&$0.name) }),
        .field("company", { $0.company }, { $1(&$0.company) }),
        .field("title", { $0.title }, { $1(&$0.title) }),
        .field("owner", { $0.owner }, { $1(&$0.owner) }),
        .field("status", { $0.status }, { $1(&$0.status) }),
        .field("address", { $0.address }, { $1(&$0.address) }),
        .field("field", { $0.customFields }, { $1(&$0.customFields) }),
        .field("phones", { $0.phones }, { $1(&$0.phones) }),
        .field("emails", { $0.emails }, { $1(&$0.emails) }),
        .field("tags", { $0.tags }, { $1(&$0.tags) }),
        .field("not-duplicate-of", { $0.notDuplicateOf }, { $1(&$0.notDuplicateOf) }, content: false),
    ]

    // The same fields in the same order as `fields` (checked by EntityFieldTests).
    @inlinable
    public func visitFields<V: FieldVisitor>(_ visitor: inout V) {
        visitor.visit(lifecycle)
        visitor.visit(authors)
        visitor.visit(name)
        visitor.visit(company)
        visitor.visit(title)
        visitor.visit(owner)
        visitor.visit(status)
        visitor.visit(address)
        visitor.visit(customFields)
        visitor.visit(phones)
        visitor.visit(emails)
        visitor.visit(tags)
        visitor.visit(notDuplicateOf)
    }

    @inlinable
    public mutating func updateFields<U: FieldUpdater>(with other: Contact, _ updater: inout U) {
        updater.update(&lifecycle, with: other.lifecycle)
        updater.update(&authors, with: other.authors)
        updater.update(&name, with: other.name)
        updater.update(&company, with: other.company)
        updater.update(&title, with: other.title)
        updater.update(&owner, with: other.owner)
        updater.update(&status, with: other.status)
        updater.update(&address, with: other.address)
        updater.update(&customFields, with: other.customFields)
        updater.update(&phones, with: other.phones)
        updater.update(&emails, with: other.emails)
        updater.update(&tags, with: other.tags)
        updater.update(&notDuplicateOf, with: other.notDuplicateOf)
    }
}

/// A note of one call with a contact. Mostly appended; the body can be edited.
public struct CallNote: Entity {
    public static let kind = EntityKind.note

    public var lifecycle = MVRegister<Lifecycle>()
    public var authors = Authors()
    public var contact = MVRegister<Reference>()
    public var author = MVRegister<String>()
    /// When the call started, ms since 1970.
    public var callTime = MVRegister<Int64>()
    /// Seconds.
    public var duration = MVRegister<UInt32>()
    public var direction = MVRegister<CallDirection>()
    public var outcome = MVRegister<CallOutcome>()
    public var tags = ORSet<String>()
    public var body = MVRegister<String>()
    /// The lifecycle stamp of the deleted contact this note was accepted as orphaned of.
    public var orphanAccepted = MVRegister<HLC>()

    public init() {}

    public static let fields: [FieldDescriptor<CallNote>] = [
        .field("lifecycle", { $0.lifecycle }, { $1(&$0.lifecycle) }, content: false),
        .field("authors", { $0.authors }, { $1(&$0.authors) }, content: false),
        .field("contact", { $0.contact }, { $1(&$0.contact) }),
        .field("author", { $0.author }, { $1(&$0.author) }),
        .field("call-time", { $0.callTime }, { $1(&$0.callTime) }),
        .field("duration", { $0.duration }, { $1(&$0.duration) }),
        .field("direction", { $0.direction }, { $1(&$0.direction) }),
        .field("outcome", { $0.outcome }, { $1(&$0.outcome) }),
        .field("tags", { $0.tags }, { $1(&$0.tags) }),
        .field("body", { $0.body }, { $1(&$0.body) }),
        .field("orphan-accepted", { $0.orphanAccepted }, { $1(&$0.orphanAccepted) }, content: false),
    ]

    // The same fields in the same order as `fields` (checked by EntityFieldTests).
    @inlinable
    public func visitFields<V: FieldVisitor>(_ visitor: inout V) {
        visitor.visit(lifecycle)
        visitor.visit(authors)
        visitor.visit(contact)
        visitor.visit(author)
        visitor.visit(callTime)
        visitor.visit(duration)
        visitor.visit(direction)
        visitor.visit(outcome)
        visitor.visit(tags)
        visitor.visit(body)
        visitor.visit(orphanAccepted)
    }

    @inlinable
    public mutating func updateFields<U: FieldUpdater>(with other: CallNote, _ updater: inout U) {
        updater.update(&lifecycle, with: other.lifecycle)
        updater.update(&authors, with: other.authors)
        updater.update(&contact, with: other.contact)
        updater.update(&author, with: other.author)
        updater.update(&callTime, with: other.callTime)
        updater.update(&duration, with: other.duration)
        updater.update(&direction, with: other.direction)
        updater.update(&outcome, with: other.outcome)
        updater.update(&tags, with: other.tags)
        updater.update(&body, with: other.body)
        updater.update(&orphanAccepted, with: other.orphanAccepted)
    }
}

/// A call-back, appointment or shift. The time interval is one value.
public struct ScheduleEntry: Entity {
    public static let kind = EntityKind.schedule

    public var lifecycle = MVRegister<Lifecycle>()
    public var authors = Authors()
    public var entryKind = MVRegister<ScheduleKind>()
    public var title = MVRegister<String>()
    public var interval = MVRegister<Interval>()
    public var assignees = ORSet<String>()
    public var contact = MVRegister<Reference>()
    public var location = MVRegister<String>()
    public var status = MVRegister<ScheduleStatus>()
    public var acceptedOverlaps = ORSet<OverlapAcceptance>()

    public init() {}

    public static let fields: [FieldDescriptor<ScheduleEntry>] = [
        .field("lifecycle", { $0.lifecycle }, { $1(&$0.lifecycle) }, content: false),
        .field("authors", { $0.authors }, { $1(&$0.authors) }, content: false),
        .field("kind", { $0.entryKind }, { $1(&$0.entryKind) }),
        .field("title", { $0.title }, { $1(&$0.title) }),
        .field("interval", { $0.interval }, { $1(&$0.interval) }),
        .field("assignees", { $0.assignees }, { $1(&$0.assignees) }),
        .field("contact", { $0.contact }, { $1(&$0.contact) }),
        .field("location", { $0.location }, { $1(&$0.location) }),
        .field("status", { $0.status }, { $1(&$0.status) }),
        .field("accepted-overlaps", { $0.acceptedOverlaps }, { $1(&$0.acceptedOverlaps) }, content: false),
    ]

    // The same fields in the same order as `fields` (checked by EntityFieldTests).
    @inlinable
    public func visitFields<V: FieldVisitor>(_ visitor: inout V) {
        visitor.visit(lifecycle)
        visitor.visit(authors)
        visitor.visit(entryKind)
        visitor.visit(title)
        visitor.visit(interval)
        visitor.visit(assignees)
        visitor.visit(contact)
        visitor.visit(location)
        visitor.visit(status)
        visitor.visit(acceptedOverlaps)
    }

    @inlinable
    public mutating func updateFields<U: FieldUpdater>(with other: ScheduleEntry, _ updater: inout U) {
        updater.update(&lifecycle, with: other.lifecycle)
        updater.update(&authors, with: other.authors)
        updater.update(&entryKind, with: other.entryKind)
        updater.update(&title, with: other.title)
        updater.update(&interval, with: other.interval)
        updater.update(&assignees, with: other.assignees)
        updater.update(&contact, with: other.contact)
        updater.update(&location, with: other.location)
        updater.update(&status, with: other.status)
        updater.update(&acceptedOverlaps, with: other.acceptedOverlaps)
    }
}
