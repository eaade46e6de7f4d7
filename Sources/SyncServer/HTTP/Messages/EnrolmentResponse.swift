/// The answer to `POST /v1/admin/enrolments`: the code, when it expires and the enrolment link
/// (`kraliki://enrol?…`) that carries it with the server's URL and certificate fingerprint.
struct EnrolmentResponse: Codable {
    let code: String
    let tenant: String
    let user: String
    let role: Role
    let expiresMs: UInt64
    let enrolment: String
}
