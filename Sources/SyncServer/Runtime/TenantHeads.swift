import Domain
import Synchronization

/// Each tenant's epoch and newest sequence, in memory, so a pull from a replica that is already
/// caught up — what idle replicas send all day — is answered without a store read or a thread
/// hop.
///
/// The sequence only ever comes from the store: read once per tenant (a miss), then raised by
/// every group commit before its live notifications go out, so a replica woken by one never
/// sees the old value. A pull that races a commit may be told "nothing new" a moment before the
/// commit's notification — as if it had arrived just before the commit. Epochs change only by
/// a restore, which runs with the server stopped.
final class TenantHeads: Sendable {
    struct Head: Sendable {
        let epoch: ServerEpoch
        var sequence: UInt64
    }

    private let heads = Mutex([String: Head]())

    /// The empty answer for `request` when its cursor is at the head of the tenant's current
    /// epoch; nil when the store must answer (a miss, another epoch, changes after the cursor).
    func caughtUp(_ tenant: String, _ request: PullRequest, wall: UInt64) -> PullResponse? {
        guard let head = heads.withLock({ $0[tenant] }) else { return nil }
        if request.epoch == head.epoch, request.cursor >= head.sequence {
            return PullResponse(
                epoch: head.epoch, changes: [], nextCursor: request.cursor, hasMore: false, serverTime: wall)
        }
        // Another epoch (or none: a fresh replica) is answered from the start, which is empty
        // while the tenant has no changes at all.
        if request.epoch != head.epoch, head.sequence == 0 {
            return PullResponse(epoch: head.epoch, changes: [], nextCursor: 0, hasMore: false, serverTime: wall)
        }
        return nil
    }

    func isKnown(_ tenant: String) -> Bool { heads.withLock { $0[tenant] != nil } }

    /// Records what the store says (a first read, or a commit); sequences never go back.
    func record(_ tenant: String, epoch: ServerEpoch, sequence: UInt64) {
        heads.withLock { heads in
            if let known = heads[tenant], known.epoch == epoch {
                heads[tenant]?.sequence = max(known.sequence, sequence)
            } else {
                heads[tenant] = Head(epoch: epoch, sequence: sequence)
            }
        }
    }
}
