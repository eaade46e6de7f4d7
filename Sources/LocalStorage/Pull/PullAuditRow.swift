import CRDT
import Domain
import Foundation
import GRDB
import StoreSupport

/// One audit row of a pulled entity, computed ahead (``CommitBase/pullAudit(of:_:before:after:receivedAt:devices:into:)``).
/// The stamp and the ID are bound as their texts (`SQLiteParameter`) without making strings.
struct PullAuditRow: Sendable {
    let at: HLC
    let user: String
    let device: String
    let kind: String
    let id: EntityID
}
