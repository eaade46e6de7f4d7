import CRDT

/// A reference to one entity.
public struct EntityRef: Hashable, Comparable, Sendable, Codable {
    public let kind: EntityKind
    public let id: EntityID

    public init(_ kind: EntityKind, _ id: EntityID) {
        self.kind = kind
        self.id = id
    }

    public static func < (lhs: EntityRef, rhs: EntityRef) -> Bool {
        lhs.kind != rhs.kind ? lhs.kind < rhs.kind : lhs.id < rhs.id
    }
}

/// Something replicas disagree about, or that needs a person's decision, derived
/// deterministically from replicated state: every replica that has seen the same changes lists
/// the same conflicts, with the same IDs, in the same order.
public struct Conflict: Hashable, Sendable, Codable, Identifiable {
    public enum Kind: String, Hashable, Sendable, Codable, CaseIterable {
        /// Concurrent writes left several values in one field. The displayed value is the
        /// deterministic winner (greatest HLC); the others are kept.
        case concurrentValues = "concurrent-values"
        /// An entity was deleted on one replica and edited on another that had not seen the delete.
        case deleteVsEdit = "delete-vs-edit"
        /// Two planned schedule entries of the same assignee overlap.
        case doubleBooking = "double-booking"
        /// Two contacts created on different replicas share a normalized phone or e-mail.
        case probableDuplicate = "probable-duplicate"
        /// A call note whose contact was deleted (or merged away).
        case orphanNote = "orphan-note"
    }

    /// One side of a conflict: a value, and who wrote it where and when.
    public struct Side: Hashable, Sendable, Codable {
        public let entity: EntityRef
        public let field: String
        public let value: String
        public let user: String
        public let device: ReplicaID
        public let stamp: HLC
    }

    /// Stable across replicas and syncs: made from the kind and the entities involved.
    public let id: String
    public let kind: Kind
    public let entities: [EntityRef]
    /// The field in question, for concurrent values (`name`, `field.customer-no`).
    public let field: String?
    public let sides: [Side]
    /// How this conflict can be resolved, as `Resolution` names (`pick`, `value`, `restore`, …).
    public var resolutions: [String] {
        switch kind {
        case .concurrentValues: field == "lifecycle" ? ["pick", "restore", "confirm-delete"] : ["pick", "value"]
        case .deleteVsEdit: ["restore", "confirm-delete"]
        case .doubleBooking: ["move-to", "cancel", "accept"]
        case .probableDuplicate: ["merge-into", "not-duplicate"]
        case .orphanNote: ["reattach", "accept"]
        }
    }
}

/// What a person decided about a conflict. Every resolution is an ordinary replicated write,
/// so it clears the conflict on every replica after sync; two different resolutions made
/// concurrently surface as a new concurrent-values conflict rather than flip-flopping.
public enum Resolution: Hashable, Sendable {
    /// Keep side `n` (0-based) of a concurrent-values conflict.
    case pick(Int)
    /// Write a new value, superseding every side.
    case value(String)
    /// Undelete the entity.
    case restore
    /// Keep the entity deleted, covering the edits it had not seen.
    case confirmDelete
    /// Merge the duplicate contacts into the one named: it gets the union of phones, e-mails and
    /// tags and the other's notes and schedule entries; the other is tombstoned as merged into it.
    case mergeInto(EntityID)
    /// The two contacts are different people.
    case notDuplicate
    /// Keep as is (overlapping entries, orphaned note).
    case accept
    /// Move one of the double-booked entries.
    case moveTo(entry: EntityID, Interval)
    /// Cancel one of the double-booked entries.
    case cancel(entry: EntityID)
    /// Attach an orphaned note to another contact.
    case reattach(EntityID)
}
