import CRDT
import Domain

/// A server ledger and a few replicas syncing straight against it: the setting of the
/// conflict scenarios ("created, listed identically on all replicas, resolved on one, cleared
/// on all").
public struct SyncWorld {
    public var ledger: TenantLedger
    public var replicas: [SimulatedReplica]
    public var wall: UInt64 = 1_764_000_000_000

    public init(users: [String]) {
        ledger = TenantLedger(epoch: ServerEpoch(rawValue: 0xE1))
        replicas = users.enumerated().map { index, user in
            SimulatedReplica(replica: ReplicaID(UInt64(index + 1) * 0x1111), user: user)
        }
    }

    /// Runs a command on replica `index`; returns its delta.
    @discardableResult
    public mutating func write(
        _ index: Int, _ command: (inout TenantState, WriteContext) throws(ValidationError) -> TenantState
    ) throws(ValidationError) -> TenantState {
        wall += 1_000
        return try replicas[index].write(wall: wall, command)
    }

    /// Every replica pushes and pulls, twice round, so everyone has everything.
    public mutating func syncAll() {
        for _ in 0..<2 {
            for index in replicas.indices {
                wall += 10
                replicas[index].sync(with: &ledger, wall: wall)
            }
        }
    }

    /// The conflict lists of every replica and of the server.
    public var conflictLists: [[Conflict]] {
        replicas.map { $0.state.conflicts() } + [ledger.state.conflicts()]
    }
}
