/// A fresh one-time enrolment code (shown once; stored only as its hash).
public struct EnrolmentCode: Codable, Sendable {
    public let code: String
    public let tenant: String
    public let user: String
    public let role: Role
    public let expiresMs: UInt64
}
