import CRDT

/// A person or company the call centre talks to.
///
/// Scalar fields are multi-value registers (concurrent edits are kept and listed as conflicts);
/// phones, e-mails and tags are add-wins sets of normalized values; custom fields are a map of
/// registers. `notDuplicateOf` records "these are not duplicates" decisions.
public struct Contact: Entity {
    public static let kind = EntityKind.contact

    /// The stored fields, behind one reference shared by copies of a contact until one of them
    /// changes (see ``CopyOnWrite``).
    public struct Fields: Equatable, Sendable, Codable {
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
    }

    @usableFromInline var storage: CopyOnWrite<Fields>

    /// The fields of the empty contact, shared by every bottom value: `Contact()` allocates nothing.
    @usableFromInline static let bottom = CopyOnWrite(Fields())

    @inlinable public init() { storage = Self.bottom }

    // Coded as the fields themselves: the same keys as when they were stored inline.
    public init(from decoder: any Decoder) throws { storage = CopyOnWrite(try Fields(from: decoder)) }
    public func encode(to encoder: any Encoder) throws { try storage.value.encode(to: encoder) }

    @inlinable public var lifecycle: MVRegister<Lifecycle> {
        get { storage.value.lifecycle }
        set { storage.value.lifecycle = newValue }
        _modify { yield &storage.value.lifecycle }
    }
    @inlinable public var authors: Authors {
        get { storage.value.authors }
        set { storage.value.authors = newValue }
        _modify { yield &storage.value.authors }
    }
    @inlinable public var name: MVRegister<String> {
        get { storage.value.name }
        set { storage.value.name = newValue }
        _modify { yield &storage.value.name }
    }
    @inlinable public var company: MVRegister<String> {
        get { storage.value.company }
        set { storage.value.company = newValue }
        _modify { yield &storage.value.company }
    }
    @inlinable public var title: MVRegister<String> {
        get { storage.value.title }
        set { storage.value.title = newValue }
        _modify { yield &storage.value.title }
    }
    @inlinable public var owner: MVRegister<String> {
        get { storage.value.owner }
        set { storage.value.owner = newValue }
        _modify { yield &storage.value.owner }
    }
    @inlinable public var status: MVRegister<ContactStatus> {
        get { storage.value.status }
        set { storage.value.status = newValue }
        _modify { yield &storage.value.status }
    }
    @inlinable public var address: MVRegister<String> {
        get { storage.value.address }
        set { storage.value.address = newValue }
        _modify { yield &storage.value.address }
    }
    @inlinable public var customFields: ORMap<String, MVRegister<String>> {
        get { storage.value.customFields }
        set { storage.value.customFields = newValue }
        _modify { yield &storage.value.customFields }
    }
    @inlinable public var phones: ORSet<String> {
        get { storage.value.phones }
        set { storage.value.phones = newValue }
        _modify { yield &storage.value.phones }
    }
    @inlinable public var emails: ORSet<String> {
        get { storage.value.emails }
        set { storage.value.emails = newValue }
        _modify { yield &storage.value.emails }
    }
    @inlinable public var tags: ORSet<String> {
        get { storage.value.tags }
        set { storage.value.tags = newValue }
        _modify { yield &storage.value.tags }
    }
    @inlinable public var notDuplicateOf: ORSet<EntityID> {
        get { storage.value.notDuplicateOf }
        set { storage.value.notDuplicateOf = newValue }
        _modify { yield &storage.value.notDuplicateOf }
    }

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
        visitor.visit(storage.value.lifecycle)
        visitor.visit(storage.value.authors)
        visitor.visit(storage.value.name)
        visitor.visit(storage.value.company)
        visitor.visit(storage.value.title)
        visitor.visit(storage.value.owner)
        visitor.visit(storage.value.status)
        visitor.visit(storage.value.address)
        visitor.visit(storage.value.customFields)
        visitor.visit(storage.value.phones)
        visitor.visit(storage.value.emails)
        visitor.visit(storage.value.tags)
        visitor.visit(storage.value.notDuplicateOf)
    }

    @inlinable
    public func visitFields<V: FieldPairVisitor>(beside other: Contact, _ visitor: inout V) {
        visitor.visit(storage.value.lifecycle, beside: other.storage.value.lifecycle)
        visitor.visit(storage.value.authors, beside: other.storage.value.authors)
        visitor.visit(storage.value.name, beside: other.storage.value.name)
        visitor.visit(storage.value.company, beside: other.storage.value.company)
        visitor.visit(storage.value.title, beside: other.storage.value.title)
        visitor.visit(storage.value.owner, beside: other.storage.value.owner)
        visitor.visit(storage.value.status, beside: other.storage.value.status)
        visitor.visit(storage.value.address, beside: other.storage.value.address)
        visitor.visit(storage.value.customFields, beside: other.storage.value.customFields)
        visitor.visit(storage.value.phones, beside: other.storage.value.phones)
        visitor.visit(storage.value.emails, beside: other.storage.value.emails)
        visitor.visit(storage.value.tags, beside: other.storage.value.tags)
        visitor.visit(storage.value.notDuplicateOf, beside: other.storage.value.notDuplicateOf)
    }

    @inlinable
    public mutating func updateFields<U: FieldUpdater>(with other: Contact, _ updater: inout U) {
        // One uniqueness check for all fields, not one per field.
        Self.update(&storage.value, with: other.storage.value, &updater)
    }

    @inlinable
    static func update<U: FieldUpdater>(_ fields: inout Fields, with other: Fields, _ updater: inout U) {
        updater.update(&fields.lifecycle, with: other.lifecycle)
        updater.update(&fields.authors, with: other.authors)
        updater.update(&fields.name, with: other.name)
        updater.update(&fields.company, with: other.company)
        updater.update(&fields.title, with: other.title)
        updater.update(&fields.owner, with: other.owner)
        updater.update(&fields.status, with: other.status)
        updater.update(&fields.address, with: other.address)
        updater.update(&fields.customFields, with: other.customFields)
        updater.update(&fields.phones, with: other.phones)
        updater.update(&fields.emails, with: other.emails)
        updater.update(&fields.tags, with: other.tags)
        updater.update(&fields.notDuplicateOf, with: other.notDuplicateOf)
    }
}

/// A note of one call with a contact. Mostly appended; the body can be edited.
public struct CallNote: Entity {
    public static let kind = EntityKind.note

    /// The stored fields, behind one reference shared by copies of a call note until one of them
    /// changes (see ``CopyOnWrite``).
    public struct Fields: Equatable, Sendable, Codable {
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
    }

    @usableFromInline var storage: CopyOnWrite<Fields>

    /// The fields of the empty call note, shared by every bottom value: `CallNote()` allocates nothing.
    @usableFromInline static let bottom = CopyOnWrite(Fields())

    @inlinable public init() { storage = Self.bottom }

    // Coded as the fields themselves: the same keys as when they were stored inline.
    public init(from decoder: any Decoder) throws { storage = CopyOnWrite(try Fields(from: decoder)) }
    public func encode(to encoder: any Encoder) throws { try storage.value.encode(to: encoder) }

    @inlinable public var lifecycle: MVRegister<Lifecycle> {
        get { storage.value.lifecycle }
        set { storage.value.lifecycle = newValue }
        _modify { yield &storage.value.lifecycle }
    }
    @inlinable public var authors: Authors {
        get { storage.value.authors }
        set { storage.value.authors = newValue }
        _modify { yield &storage.value.authors }
    }
    @inlinable public var contact: MVRegister<Reference> {
        get { storage.value.contact }
        set { storage.value.contact = newValue }
        _modify { yield &storage.value.contact }
    }
    @inlinable public var author: MVRegister<String> {
        get { storage.value.author }
        set { storage.value.author = newValue }
        _modify { yield &storage.value.author }
    }
    /// When the call started, ms since 1970.
    @inlinable public var callTime: MVRegister<Int64> {
        get { storage.value.callTime }
        set { storage.value.callTime = newValue }
        _modify { yield &storage.value.callTime }
    }
    /// Seconds.
    @inlinable public var duration: MVRegister<UInt32> {
        get { storage.value.duration }
        set { storage.value.duration = newValue }
        _modify { yield &storage.value.duration }
    }
    @inlinable public var direction: MVRegister<CallDirection> {
        get { storage.value.direction }
        set { storage.value.direction = newValue }
        _modify { yield &storage.value.direction }
    }
    @inlinable public var outcome: MVRegister<CallOutcome> {
        get { storage.value.outcome }
        set { storage.value.outcome = newValue }
        _modify { yield &storage.value.outcome }
    }
    @inlinable public var tags: ORSet<String> {
        get { storage.value.tags }
        set { storage.value.tags = newValue }
        _modify { yield &storage.value.tags }
    }
    @inlinable public var body: MVRegister<String> {
        get { storage.value.body }
        set { storage.value.body = newValue }
        _modify { yield &storage.value.body }
    }
    /// The lifecycle stamp of the deleted contact this note was accepted as orphaned of.
    @inlinable public var orphanAccepted: MVRegister<HLC> {
        get { storage.value.orphanAccepted }
        set { storage.value.orphanAccepted = newValue }
        _modify { yield &storage.value.orphanAccepted }
    }

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
        visitor.visit(storage.value.lifecycle)
        visitor.visit(storage.value.authors)
        visitor.visit(storage.value.contact)
        visitor.visit(storage.value.author)
        visitor.visit(storage.value.callTime)
        visitor.visit(storage.value.duration)
        visitor.visit(storage.value.direction)
        visitor.visit(storage.value.outcome)
        visitor.visit(storage.value.tags)
        visitor.visit(storage.value.body)
        visitor.visit(storage.value.orphanAccepted)
    }

    @inlinable
    public func visitFields<V: FieldPairVisitor>(beside other: CallNote, _ visitor: inout V) {
        visitor.visit(storage.value.lifecycle, beside: other.storage.value.lifecycle)
        visitor.visit(storage.value.authors, beside: other.storage.value.authors)
        visitor.visit(storage.value.contact, beside: other.storage.value.contact)
        visitor.visit(storage.value.author, beside: other.storage.value.author)
        visitor.visit(storage.value.callTime, beside: other.storage.value.callTime)
        visitor.visit(storage.value.duration, beside: other.storage.value.duration)
        visitor.visit(storage.value.direction, beside: other.storage.value.direction)
        visitor.visit(storage.value.outcome, beside: other.storage.value.outcome)
        visitor.visit(storage.value.tags, beside: other.storage.value.tags)
        visitor.visit(storage.value.body, beside: other.storage.value.body)
        visitor.visit(storage.value.orphanAccepted, beside: other.storage.value.orphanAccepted)
    }

    @inlinable
    public mutating func updateFields<U: FieldUpdater>(with other: CallNote, _ updater: inout U) {
        // One uniqueness check for all fields, not one per field.
        Self.update(&storage.value, with: other.storage.value, &updater)
    }

    @inlinable
    static func update<U: FieldUpdater>(_ fields: inout Fields, with other: Fields, _ updater: inout U) {
        updater.update(&fields.lifecycle, with: other.lifecycle)
        updater.update(&fields.authors, with: other.authors)
        updater.update(&fields.contact, with: other.contact)
        updater.update(&fields.author, with: other.author)
        updater.update(&fields.callTime, with: other.callTime)
        updater.update(&fields.duration, with: other.duration)
        updater.update(&fields.direction, with: other.direction)
        updater.update(&fields.outcome, with: other.outcome)
        updater.update(&fields.tags, with: other.tags)
        updater.update(&fields.body, with: other.body)
        updater.update(&fields.orphanAccepted, with: other.orphanAccepted)
    }
}

/// A call-back, appointment or shift. The time interval is one value.
public struct ScheduleEntry: Entity {
    public static let kind = EntityKind.schedule

    /// The stored fields, behind one reference shared by copies of a schedule entry until one of them
    /// changes (see ``CopyOnWrite``).
    public struct Fields: Equatable, Sendable, Codable {
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
    }

    @usableFromInline var storage: CopyOnWrite<Fields>

    /// The fields of the empty schedule entry, shared by every bottom value: `ScheduleEntry()` allocates nothing.
    @usableFromInline static let bottom = CopyOnWrite(Fields())

    @inlinable public init() { storage = Self.bottom }

    // Coded as the fields themselves: the same keys as when they were stored inline.
    public init(from decoder: any Decoder) throws { storage = CopyOnWrite(try Fields(from: decoder)) }
    public func encode(to encoder: any Encoder) throws { try storage.value.encode(to: encoder) }

    @inlinable public var lifecycle: MVRegister<Lifecycle> {
        get { storage.value.lifecycle }
        set { storage.value.lifecycle = newValue }
        _modify { yield &storage.value.lifecycle }
    }
    @inlinable public var authors: Authors {
        get { storage.value.authors }
        set { storage.value.authors = newValue }
        _modify { yield &storage.value.authors }
    }
    @inlinable public var entryKind: MVRegister<ScheduleKind> {
        get { storage.value.entryKind }
        set { storage.value.entryKind = newValue }
        _modify { yield &storage.value.entryKind }
    }
    @inlinable public var title: MVRegister<String> {
        get { storage.value.title }
        set { storage.value.title = newValue }
        _modify { yield &storage.value.title }
    }
    @inlinable public var interval: MVRegister<Interval> {
        get { storage.value.interval }
        set { storage.value.interval = newValue }
        _modify { yield &storage.value.interval }
    }
    @inlinable public var assignees: ORSet<String> {
        get { storage.value.assignees }
        set { storage.value.assignees = newValue }
        _modify { yield &storage.value.assignees }
    }
    @inlinable public var contact: MVRegister<Reference> {
        get { storage.value.contact }
        set { storage.value.contact = newValue }
        _modify { yield &storage.value.contact }
    }
    @inlinable public var location: MVRegister<String> {
        get { storage.value.location }
        set { storage.value.location = newValue }
        _modify { yield &storage.value.location }
    }
    @inlinable public var status: MVRegister<ScheduleStatus> {
        get { storage.value.status }
        set { storage.value.status = newValue }
        _modify { yield &storage.value.status }
    }
    @inlinable public var acceptedOverlaps: ORSet<OverlapAcceptance> {
        get { storage.value.acceptedOverlaps }
        set { storage.value.acceptedOverlaps = newValue }
        _modify { yield &storage.value.acceptedOverlaps }
    }

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
        visitor.visit(storage.value.lifecycle)
        visitor.visit(storage.value.authors)
        visitor.visit(storage.value.entryKind)
        visitor.visit(storage.value.title)
        visitor.visit(storage.value.interval)
        visitor.visit(storage.value.assignees)
        visitor.visit(storage.value.contact)
        visitor.visit(storage.value.location)
        visitor.visit(storage.value.status)
        visitor.visit(storage.value.acceptedOverlaps)
    }

    @inlinable
    public func visitFields<V: FieldPairVisitor>(beside other: ScheduleEntry, _ visitor: inout V) {
        visitor.visit(storage.value.lifecycle, beside: other.storage.value.lifecycle)
        visitor.visit(storage.value.authors, beside: other.storage.value.authors)
        visitor.visit(storage.value.entryKind, beside: other.storage.value.entryKind)
        visitor.visit(storage.value.title, beside: other.storage.value.title)
        visitor.visit(storage.value.interval, beside: other.storage.value.interval)
        visitor.visit(storage.value.assignees, beside: other.storage.value.assignees)
        visitor.visit(storage.value.contact, beside: other.storage.value.contact)
        visitor.visit(storage.value.location, beside: other.storage.value.location)
        visitor.visit(storage.value.status, beside: other.storage.value.status)
        visitor.visit(storage.value.acceptedOverlaps, beside: other.storage.value.acceptedOverlaps)
    }

    @inlinable
    public mutating func updateFields<U: FieldUpdater>(with other: ScheduleEntry, _ updater: inout U) {
        // One uniqueness check for all fields, not one per field.
        Self.update(&storage.value, with: other.storage.value, &updater)
    }

    @inlinable
    static func update<U: FieldUpdater>(_ fields: inout Fields, with other: Fields, _ updater: inout U) {
        updater.update(&fields.lifecycle, with: other.lifecycle)
        updater.update(&fields.authors, with: other.authors)
        updater.update(&fields.entryKind, with: other.entryKind)
        updater.update(&fields.title, with: other.title)
        updater.update(&fields.interval, with: other.interval)
        updater.update(&fields.assignees, with: other.assignees)
        updater.update(&fields.contact, with: other.contact)
        updater.update(&fields.location, with: other.location)
        updater.update(&fields.status, with: other.status)
        updater.update(&fields.acceptedOverlaps, with: other.acceptedOverlaps)
    }
}
