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
