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
        .field("lifecycle", \.lifecycle, content: false),
        .field("authors", \.authors, content: false),
        .field("name", \.name),
        .field("company", \.company),
        .field("title", \.title),
        .field("owner", \.owner),
        .field("status", \.status),
        .field("address", \.address),
        .field("field", \.customFields),
        .field("phones", \.phones),
        .field("emails", \.emails),
        .field("tags", \.tags),
        .field("not-duplicate-of", \.notDuplicateOf, content: false),
    ]
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
        .field("lifecycle", \.lifecycle, content: false),
        .field("authors", \.authors, content: false),
        .field("contact", \.contact),
        .field("author", \.author),
        .field("call-time", \.callTime),
        .field("duration", \.duration),
        .field("direction", \.direction),
        .field("outcome", \.outcome),
        .field("tags", \.tags),
        .field("body", \.body),
        .field("orphan-accepted", \.orphanAccepted, content: false),
    ]
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
        .field("lifecycle", \.lifecycle, content: false),
        .field("authors", \.authors, content: false),
        .field("kind", \.entryKind),
        .field("title", \.title),
        .field("interval", \.interval),
        .field("assignees", \.assignees),
        .field("contact", \.contact),
        .field("location", \.location),
        .field("status", \.status),
        .field("accepted-overlaps", \.acceptedOverlaps, content: false),
    ]
}
