import CRDT

/// Everything one tenant holds: contacts, call notes and schedule entries, each a map from
/// ``EntityID`` to the entity's CRDT. A replica holds one; the server holds one per tenant.
///
/// Commands (`createContact`, `addNote`, `moveScheduleEntry`, conflict resolutions …) validate
/// their input first and throw ``ValidationError`` without changing anything; otherwise they
/// apply their change and return it as a delta (a `TenantState` holding just what changed) for
/// the outbox. Merging is the CRDT join, so states received from anywhere, in any order, any
/// number of times, converge.
public struct TenantState: Mergeable, Codable, Sendable {
    public internal(set) var contacts = ORMap<EntityID, Contact>()
    public internal(set) var notes = ORMap<EntityID, CallNote>()
    public internal(set) var schedule = ORMap<EntityID, ScheduleEntry>()

    public init() {}

    public init(
        contacts: ORMap<EntityID, Contact> = ORMap(), notes: ORMap<EntityID, CallNote> = ORMap(),
        schedule: ORMap<EntityID, ScheduleEntry> = ORMap()
    ) {
        self.contacts = contacts
        self.notes = notes
        self.schedule = schedule
    }

    public var isBottom: Bool { contacts.isBottom && notes.isBottom && schedule.isBottom }

    public mutating func merge(_ other: TenantState) {
        contacts.merge(other.contacts)
        notes.merge(other.notes)
        schedule.merge(other.schedule)
    }

    /// Makes room for this many entities of each kind in all (a bulk import, a pulled batch of
    /// one-entity changes merged into one), so the maps do not grow step by step.
    public mutating func reserveCapacity(contacts: Int = 0, notes: Int = 0, schedule: Int = 0) {
        self.contacts.reserveCapacity(contacts)
        self.notes.reserveCapacity(notes)
        self.schedule.reserveCapacity(schedule)
    }

    /// Merges a change whose merge with this state `merged(with:)` computed already: takes
    /// those entities as they are (see `ORMap.mergeJoined(_:)`).
    /// Returns the entities' versions it replaced (``Replaced``).
    @discardableResult
    public mutating func mergeJoined(_ merged: TenantState) -> Replaced {
        Replaced(
            contacts: contacts.mergeJoined(merged.contacts), notes: notes.mergeJoined(merged.notes),
            schedule: schedule.mergeJoined(merged.schedule))
    }

    /// The versions of entities a ``mergeJoined(_:)`` replaced: freeing them (the last
    /// reference to each old version's fields) is work a caller may hand to another thread.
    public struct Replaced: Sendable {
        let contacts: [Contact]
        let notes: [CallNote]
        let schedule: [ScheduleEntry]
    }

    /// The number of entities (of every kind, deleted ones included).
    public var entityCount: Int { contacts.count + notes.count + schedule.count }

    /// Applies `delta` and returns it.
    @discardableResult
    mutating func apply(_ delta: TenantState) -> TenantState {
        merge(delta)
        return delta
    }
}

extension TenantState: BinaryBlob {
    public static var blobType: BlobType { .tenantState }

    public func encode(to writer: inout BinaryWriter) {
        contacts.encode(to: &writer)
        notes.encode(to: &writer)
        schedule.encode(to: &writer)
    }

    public init(from reader: inout BinaryReader) throws(BinaryDecodingError) {
        contacts = try ORMap(from: &reader)
        notes = try ORMap(from: &reader)
        schedule = try ORMap(from: &reader)
    }
}

extension BlobType {
    /// A ``TenantState`` or a delta of one: the unit of change the sync protocol ships.
    public static let tenantState = BlobType(rawValue: 0x20)
}

/// Settings that shape validation: the country of national phone numbers, and limits.
public struct DomainSettings: Hashable, Sendable {
    public var defaultCountry: PhoneNumber.Country
    public var limits: Limits

    public init(defaultCountry: PhoneNumber.Country = PhoneNumber.country("CZ")!, limits: Limits = .standard) {
        self.defaultCountry = defaultCountry
        self.limits = limits
    }
}

/// Who writes and when: every command takes one fresh stamp from the replica's clock.
public struct WriteContext: Hashable, Sendable {
    public let author: Author
    public let stamp: HLC
    public let settings: DomainSettings

    public init(author: Author, stamp: HLC, settings: DomainSettings = DomainSettings()) {
        precondition(author.device == stamp.replica, "a device writes with its own clock")
        self.author = author
        self.stamp = stamp
        self.settings = settings
    }
}
