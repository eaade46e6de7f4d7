import Domain

/// Where a tenant's ledger stands: what bootstrap images are built and checked against.
public struct LedgerHead: Sendable, Equatable {
    public let tenant: String
    public let epoch: ServerEpoch
    public let sequence: UInt64
    /// A pull from a cursor below this is refused as stale (collected tombstones).
    public let collectedThrough: UInt64
}
