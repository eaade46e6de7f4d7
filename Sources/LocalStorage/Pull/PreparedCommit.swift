import CRDT
import Domain
import Foundation
import GRDB
import StoreSupport

/// A sync step ready to be written (``LocalStore/write(_:)``) and then taken into memory
/// (``LocalStore/adopt(_:)``).
public struct PreparedCommit: Sendable {
    public private(set) var session: ReplicaSyncSession
    /// The session's actions but the pulled changes (`.apply`): those are in `merged` and `writes`.
    public private(set) var actions: [ReplicaSyncSession.Action]
    /// The entities the pulled changes touch, after the step.
    private(set) var merged: TenantState
    /// The statements that write them, planned (their encoded states, their columns, …).
    private(set) var writes: RowWrites
    /// The audit rows of the pulled entities (none when the store does not audit pulls).
    private(set) var pullAudit: [PullAuditRow]
    private(set) var clock: HybridLogicalClock
    private(set) var sessionJSON: String
    private(set) var wall: UInt64

    /// Joins `next` — the step prepared against ``CommitBase/after(_:)`` this one — to this step:
    /// one step again, written in ONE transaction, which ends where `next` ends (its session,
    /// cursor and clock). The sync engine writes pulled batches that arrived while it wrote the
    /// previous ones this way: SQLite's cost per commit (the fsync, the pages written again)
    /// is paid once for all of them.
    ///
    /// Mutates in place; `next.merged` must have been prepared over this step's `merged`, so its
    /// entities are taken as they are.
    public mutating func append(_ next: PreparedCommit) {
        actions.removeAll { $0 == .pullAgain }
        actions += next.actions
        merged.mergeJoined(next.merged)
        writes.append(contentsOf: next.writes)
        pullAudit += next.pullAudit
        session = next.session
        clock = next.clock
        sessionJSON = next.sessionJSON
        wall = next.wall
    }
}
