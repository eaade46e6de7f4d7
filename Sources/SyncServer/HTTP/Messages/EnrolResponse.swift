/// The answer to `POST /v1/enroll`: the new device and its bearer token (shown once).
struct EnrolResponse: Codable {
    let deviceId: String
    let tenant: String
    let user: String
    let role: Role
    let token: String
    let epoch: String
    let serverTime: UInt64
}
