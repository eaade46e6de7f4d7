import CRDT
import Domain
import Foundation
import GRDB
import StoreSupport

/// What `replica-cli history ID` shows.
public struct EntityHistory: Codable, Equatable, Sendable {
    public let id: String
    public let kind: String
    /// Every change this replica recorded, oldest first.
    public let changes: [HistoryEntry]
    /// The live value of every field, by time: the last writer of each value, from any replica.
    public let fields: [FieldAuthorship]
}
