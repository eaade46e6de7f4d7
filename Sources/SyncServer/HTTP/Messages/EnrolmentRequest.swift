/// `POST /v1/admin/enrolments`: who the new code enrols, with which role.
struct EnrolmentRequest: Codable {
    let user: String
    let role: Role
    /// For disaster recovery: the replica ID that will rejoin with this code (and only it).
    let rejoinReplica: String?
}
