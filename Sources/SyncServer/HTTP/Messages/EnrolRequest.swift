/// `POST /v1/enroll`: a one-time code, and for a replica rejoining a server that lost it, its
/// claim.
struct EnrolRequest: Codable {
    let code: String
    /// An existing replica, kept when it rejoins a server that lost it (disaster recovery).
    let rejoining: RejoinClaim?
}
