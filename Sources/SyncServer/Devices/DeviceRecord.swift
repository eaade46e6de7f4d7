import CRDT

/// An enrolled device as the server knows it.
public struct DeviceRecord: Codable, Sendable, Equatable {
    public let id: String
    public let tenant: String
    public let user: String
    public let role: Role
    public let createdMs: UInt64
    public let revokedMs: UInt64?
    public let lastSeenMs: UInt64?
    public let lastPushMs: UInt64?
    public let lastPullMs: UInt64?
    /// The newest cursor it pulled to.
    public let cursor: UInt64

    public init(
        id: String, tenant: String, user: String, role: Role, createdMs: UInt64, revokedMs: UInt64?,
        lastSeenMs: UInt64?,
        lastPushMs: UInt64?, lastPullMs: UInt64?, cursor: UInt64
    ) {
        self.id = id
        self.tenant = tenant
        self.user = user
        self.role = role
        self.createdMs = createdMs
        self.revokedMs = revokedMs
        self.lastSeenMs = lastSeenMs
        self.lastPushMs = lastPushMs
        self.lastPullMs = lastPullMs
        self.cursor = cursor
    }

    public var replica: ReplicaID { ReplicaID(UInt64(id, radix: 16) ?? 0) }
    public var isRevoked: Bool { revokedMs != nil }
}
