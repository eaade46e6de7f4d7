import CRDT
import Domain
import Foundation
import GRDB
import StoreSupport

/// What `StoreRepair.repair(in:)` saved from a damaged replica file.
public struct RepairReport: Codable, Equatable, Sendable {
    public let replica: String
    public let user: String
    public let tenant: String
    /// Outbox changes carried over: not yet pushed, and refused ones (with their reasons).
    public let pendingChanges: Int
    public let refusedChanges: Int
    /// Audit-trail rows carried over.
    public let auditRows: Int
    /// True when the damage stopped the reading of the outbox or the trail before its end, or a
    /// change in the outbox did not decode: what was in the damaged part is lost.
    public let readingStopped: Bool
    /// Where the damaged file was moved (kept, never deleted).
    public let damagedFile: String
}
