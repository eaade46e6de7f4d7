import CRDT
import Domain
import Foundation
import GRDB
import StoreSupport

/// One entry of an entity's audit trail on this replica.
public struct HistoryEntry: Codable, Equatable, Sendable {
    /// When, ISO 8601 UTC (the HLC time of the change).
    public let at: String
    public let user: String
    public let device: String
    /// `write` (made here), `import`, or `pull` (received from the server).
    public let action: String
}

/// A field's current value and who wrote it.
public struct FieldAuthorship: Codable, Equatable, Sendable {
    public let field: String
    public let value: String
    public let user: String
    public let device: String
    public let at: String
}

/// What `replica-cli history ID` shows.
public struct EntityHistory: Codable, Equatable, Sendable {
    public let id: String
    public let kind: String
    /// Every change this replica recorded, oldest first.
    public let changes: [HistoryEntry]
    /// The live value of every field, by time: the last writer of each value, from any replica.
    public let fields: [FieldAuthorship]
}
