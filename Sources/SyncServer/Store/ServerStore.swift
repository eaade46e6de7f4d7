import CRDT
import Domain

/// What the server needs from its durable store: every tenant's ledger (ingest in groups,
/// pulls by cursor, the merged state), its devices and enrolment codes, the audit log, retention
/// and health. The routes and background services depend on this protocol only; the embedded
/// SQLite store (`SQLiteServerStore` over a `ServerDatabase`) is its first implementation, and
/// `ServerStoreConformance` in the tests is what any implementation must pass.
///
/// Every method is `async` so a store on a network database can suspend instead of blocking a
/// thread. Errors: `StoreError` when the store itself fails (the HTTP layer answers 503, nothing
/// changed), `PullFailure` from pulls, `DeviceError` when an enrolment or admin action is refused.
///
/// Semantics every implementation keeps (the conformance suite checks them):
/// - `receive` applies a group of pushes in order in one durable transaction and returns only
///   after it is durable; its answers are exactly `TenantLedger`'s.
/// - Sequence numbers of a tenant never skip and a pull never sees a later change without an
///   earlier one (a reader must not see sequence 11 and miss 10).
/// - A revoked device is refused at its next request.
/// - A device's cursor is its newest pull's: activity recorded late never moves it back.
public protocol ServerStore: Sendable {
    // MARK: Ledgers

    /// The tenant's epoch; the first call for a tenant creates its ledger.
    func epoch(of tenant: String) async throws -> ServerEpoch
    /// The tenant's epoch and last sequence, or nil when it has no ledger yet.
    func head(of tenant: String) async throws -> (epoch: ServerEpoch, sequence: UInt64)?
    /// The last sequence number given in the tenant's ledger (0 without one).
    func sequence(of tenant: String) async throws -> UInt64
    /// Applies every push of `group` in one durable transaction, in order; their receipts in the
    /// same order, after the commit.
    func receive(_ group: [TenantPush], wall: UInt64) async throws -> [PushReceipt]
    /// The current state of what changed after the request's cursor (`TenantLedger.respond`);
    /// `PullFailure.staleCursor` below collected tombstones.
    func respond(to request: PullRequest, tenant: String, wall: UInt64) async throws -> PullResponse
    /// The tenant's whole merged state (its conflicts are derived from it).
    func state(of tenant: String) async throws -> TenantState

    // MARK: Devices and enrolment

    /// The device a bearer token belongs to, revoked or not; nil for an unknown token.
    func device(token: String) async throws -> DeviceRecord?
    /// Whether the device is revoked now (read on every request: no window after a revoke).
    func isRevoked(device: String) async throws -> Bool
    /// Exchanges a one-time code for a new device and its token.
    func enrol(code: String, wall: UInt64, rejoining: RejoinClaim?) async throws -> Enrolment
    /// Creates (or updates the role of) `user` in `tenant` and a one-time code for them.
    func createEnrolmentCode(
        tenant: String, user: String, role: Role, wall: UInt64, lifetimeMs: UInt64, actor: String,
        rejoinReplica: ReplicaID?
    ) async throws -> EnrolmentCode
    /// The tenant's codes not used, withdrawn or expired yet.
    func pendingCodes(tenant: String, wall: UInt64) async throws -> [PendingCode]
    /// Withdraws a pending code of the tenant; `DeviceError` when there is none with that ID.
    func revokeCode(id: String, tenant: String, actor: String, wall: UInt64) async throws -> PendingCode
    /// The tenant's devices.
    func devices(tenant: String) async throws -> [DeviceRecord]
    /// Every tenant's devices (for the store gauges).
    func allDevices() async throws -> [DeviceRecord]
    /// Revokes a device of the tenant; `DeviceError` when it has no such device.
    func revoke(device: String, tenant: String, actor: String, wall: UInt64) async throws -> DeviceRecord
    /// The tenant's users and their roles.
    func users(tenant: String) async throws -> [(name: String, role: Role)]
    /// What admins did in the tenant, newest first.
    func auditLog(tenant: String) async throws -> [(atMs: UInt64, actor: String, action: String, detail: String)]
    /// Writes gathered device activity; the cursor is the newest pull's (by pull time).
    func record(activity: [String: DeviceActivity]) async throws

    // MARK: Operations

    /// Checks that the store takes a write now (for `/readyz`).
    func checkWritable() async throws
    /// The last successful backup, if any.
    func lastBackup() async throws -> (atMs: UInt64, file: String, bytes: Int)?
    /// The store's size on disk in bytes (0 when it cannot tell).
    func storedBytes() async -> Int
    /// Collects tombstones past `retention` ms that every device pulled, and superseded log
    /// entries.
    func collectGarbage(retention: UInt64, wall: UInt64) async throws -> GarbageCollection
}
