/// `GET /v1/admin/enrolments`: the tenant's enrolment codes not used, revoked or expired yet.
struct PendingCodeList: Codable {
    let codes: [PendingCode]
}
