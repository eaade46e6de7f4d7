/// What a device receives when it exchanges a code: its identity and its token (once).
public struct Enrolment: Codable, Sendable {
    public let deviceId: String
    public let tenant: String
    public let user: String
    public let role: Role
    public let token: String
}
