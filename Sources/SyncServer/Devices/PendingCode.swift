/// An enrolment code not used, withdrawn or expired yet: what an admin may still revoke. The
/// code itself is never shown again (only its hash is stored); it is named by `id`, the first
/// 16 hex digits of that hash.
public struct PendingCode: Codable, Sendable, Equatable {
    public let id: String
    public let user: String
    public let role: Role
    public let createdMs: UInt64
    public let expiresMs: UInt64
    /// The replica the code is for, when it serves a rejoin.
    public let rejoinReplica: String?
}
