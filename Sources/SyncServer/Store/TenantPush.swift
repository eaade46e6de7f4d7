import CRDT
import Domain

/// One push of a group: a batch and the tenant (and device) it comes from.
public struct TenantPush: Sendable {
    public let batch: PushBatch
    public let tenant: String
    /// The pushing device, whose health columns the same transaction updates.
    public let device: String?
    /// Who pushes: the device's replica and its user. Its changes may hold only its own
    /// writes (see ``ForeignWrite``); `nil` for trusted callers (tests, tools), unchecked.
    public let author: Author?
    /// The newest stamp of each change (for the drift check), found where the push is made —
    /// on the request's thread — rather than on the single ingest thread every push waits for.
    let newestStamps: [HLC?]
    /// Per change, whether it may hold another device's write (so the ingest thread checks it
    /// exactly); false for nearly every change, found on the request's thread too.
    let mayHoldForeignWrites: [Bool]
    /// Per change, the replicas it names and its largest kernel (with an author only), taken
    /// on the request's thread too; the ingest thread looks up only replicas other than the
    /// author's (``replicaRefusal``).
    let censuses: [Census?]

    struct Census {
        /// Each replica named with the newest counter it is named with.
        let named: VersionVector
        let largestContext: Int
        let mostLiveEvents: Int
    }

    public init(batch: PushBatch, tenant: String, device: String? = nil, author: Author? = nil) {
        self.batch = batch
        self.tenant = tenant
        self.device = device
        self.author = author
        newestStamps = batch.changes.map(\.change.newestStamp)
        mayHoldForeignWrites = batch.changes.map { change in
            author.map { change.change.mayHoldForeignWrites(by: $0) } ?? false
        }
        censuses = batch.changes.map { change in
            guard author != nil else { return nil }
            let census = change.change.census()
            return Census(
                named: census.replicas, largestContext: census.largestContext,
                mostLiveEvents: census.mostLiveEvents)
        }
    }
}
