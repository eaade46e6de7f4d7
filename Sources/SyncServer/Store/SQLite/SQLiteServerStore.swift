import CRDT
import Domain
import Foundation

/// The embedded store: a `ServerStore` over one SQLite file (`ServerDatabase`). Small indexed
/// reads and writes run inline (they take microseconds); work that can take long — ingest with
/// its fsync, pulls, a whole tenant's state, enrolment, health checks, collection — runs on a
/// dispatch queue, off the event loops and the cooperative pool.
public struct SQLiteServerStore: ServerStore {
    public let database: ServerDatabase

    public init(_ database: ServerDatabase) { self.database = database }

    public func epoch(of tenant: String) throws -> ServerEpoch { try database.epoch(of: tenant) }

    public func head(of tenant: String) throws -> (epoch: ServerEpoch, sequence: UInt64)? {
        try database.head(of: tenant)
    }

    public func sequence(of tenant: String) throws -> UInt64 { try database.sequence(of: tenant) }

    public func receive(_ group: [TenantPush], wall: UInt64) async throws -> [PushReceipt] {
        let database = self.database
        return try await BlockingWork.run { try database.receive(group, wall: wall) }
    }

    public func respond(to request: PullRequest, tenant: String, wall: UInt64) async throws -> PullResponse {
        let database = self.database
        return try await BlockingWork.run { try database.respond(to: request, tenant: tenant, wall: wall) }
    }

    public func state(of tenant: String) async throws -> TenantState {
        let database = self.database
        return try await BlockingWork.run { try database.state(of: tenant) }
    }

    public func device(token: String) throws -> DeviceRecord? { try database.device(token: token) }

    public func isRevoked(device: String) throws -> Bool { try database.isRevoked(device: device) }

    public func enrol(code: String, wall: UInt64, rejoining: RejoinClaim?) async throws -> Enrolment {
        let database = self.database
        return try await BlockingWork.run { try database.enrol(code: code, wall: wall, rejoining: rejoining) }
    }

    public func createEnrolmentCode(
        tenant: String, user: String, role: Role, wall: UInt64, lifetimeMs: UInt64, actor: String,
        rejoinReplica: ReplicaID?
    ) throws -> EnrolmentCode {
        try database.createEnrolmentCode(
            tenant: tenant, user: user, role: role, wall: wall, lifetimeMs: lifetimeMs, actor: actor,
            rejoinReplica: rejoinReplica)
    }

    public func pendingCodes(tenant: String, wall: UInt64) throws -> [PendingCode] {
        try database.pendingCodes(tenant: tenant, wall: wall)
    }

    public func revokeCode(id: String, tenant: String, actor: String, wall: UInt64) throws -> PendingCode {
        try database.revokeCode(id: id, tenant: tenant, actor: actor, wall: wall)
    }

    public func devices(tenant: String) throws -> [DeviceRecord] { try database.devices(tenant: tenant) }

    public func allDevices() throws -> [DeviceRecord] { try database.allDevices() }

    public func revoke(device: String, tenant: String, actor: String, wall: UInt64) throws -> DeviceRecord {
        try database.revoke(device: device, tenant: tenant, actor: actor, wall: wall)
    }

    public func users(tenant: String) throws -> [(name: String, role: Role)] { try database.users(tenant: tenant) }

    public func auditLog(tenant: String) throws -> [(atMs: UInt64, actor: String, action: String, detail: String)] {
        try database.auditLog(tenant: tenant)
    }

    public func record(activity: [String: DeviceActivity]) throws { try database.record(activity: activity) }

    public func checkWritable() async throws {
        // Waits for the writer lock behind group commits.
        let database = self.database
        try await BlockingWork.run { try database.checkWritable() }
    }

    public func lastBackup() async throws -> (atMs: UInt64, file: String, bytes: Int)? {
        let database = self.database
        return try await BlockingWork.run { try database.lastBackup() }
    }

    public func storedBytes() -> Int {
        (try? FileManager.default.attributesOfItem(atPath: database.path)[.size] as? Int) ?? 0
    }

    public func collectGarbage(retention: UInt64, wall: UInt64) async throws -> GarbageCollection {
        let database = self.database
        return try await BlockingWork.run { try database.collectGarbage(retention: retention, wall: wall) }
    }
}
