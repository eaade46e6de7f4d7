/// `GET /v1/admin/audit`: what admins did in the tenant, newest first.
struct AuditLog: Codable {
    struct Entry: Codable {
        let atMs: UInt64
        let actor: String
        let action: String
        let detail: String
    }

    let entries: [Entry]
}
