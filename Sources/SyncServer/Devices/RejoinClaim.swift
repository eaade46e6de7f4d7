/// What a replica rejoining a server that lost it claims: its ID, tenant and user.
public struct RejoinClaim: Codable, Sendable, Equatable {
    public let replica: String
    public let tenant: String
    public let user: String

    public init(replica: String, tenant: String, user: String) {
        self.replica = replica
        self.tenant = tenant
        self.user = user
    }
}
