/// A new contact, as entered. Only `name` is required.
public struct ContactDraft: Hashable, Sendable, Codable {
    public var name: String
    public var company: String?
    public var title: String?
    public var owner: String?
    public var status: String?
    public var address: String?
    public var phones: [String]
    public var emails: [String]
    public var tags: [String]
    public var customFields: [String: String]

    public init(
        name: String, company: String? = nil, title: String? = nil, owner: String? = nil, status: String? = nil,
        address: String? = nil, phones: [String] = [], emails: [String] = [], tags: [String] = [],
        customFields: [String: String] = [:]
    ) {
        self.name = name
        self.company = company
        self.title = title
        self.owner = owner
        self.status = status
        self.address = address
        self.phones = phones
        self.emails = emails
        self.tags = tags
        self.customFields = customFields
    }
}

/// Changes to a contact; `nil` and empty mean "leave as is".
public struct ContactEdit: Hashable, Sendable, Codable {
    public var name: String?
    public var company: String?
    public var title: String?
    public var owner: String?
    public var status: String?
    public var address: String?
    public var addPhones: [String] = []
    public var removePhones: [String] = []
    public var addEmails: [String] = []
    public var removeEmails: [String] = []
    public var addTags: [String] = []
    public var removeTags: [String] = []
    /// Custom fields to set; an empty value removes the field.
    public var customFields: [String: String] = [:]

    public init() {}
}

/// A new call note.
public struct NoteDraft: Hashable, Sendable, Codable {
    public var contact: EntityID
    public var text: String
    /// When the call started (ms since 1970); the write's own time when `nil`.
    public var callTime: Int64?
    public var durationSeconds: UInt32?
    public var direction: String?
    public var outcome: String?
    public var tags: [String]

    public init(
        contact: EntityID, text: String, callTime: Int64? = nil, durationSeconds: UInt32? = nil,
        direction: String? = nil,
        outcome: String? = nil, tags: [String] = []
    ) {
        self.contact = contact
        self.text = text
        self.callTime = callTime
        self.durationSeconds = durationSeconds
        self.direction = direction
        self.outcome = outcome
        self.tags = tags
    }
}

/// A new schedule entry.
public struct ScheduleDraft: Hashable, Sendable, Codable {
    public var title: String
    public var start: Int64
    public var end: Int64
    public var timeZone: String
    public var kind: String?
    public var assignees: [String]
    public var contact: EntityID?
    public var location: String?

    public init(
        title: String, start: Int64, end: Int64, timeZone: String = "Europe/Prague", kind: String? = nil,
        assignees: [String] = [], contact: EntityID? = nil, location: String? = nil
    ) {
        self.title = title
        self.start = start
        self.end = end
        self.timeZone = timeZone
        self.kind = kind
        self.assignees = assignees
        self.contact = contact
        self.location = location
    }
}
