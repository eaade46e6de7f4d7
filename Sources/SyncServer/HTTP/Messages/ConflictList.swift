import Domain

/// `GET /v1/admin/conflicts`: the tenant's open conflicts, as every replica derives them.
struct ConflictList: Codable {
    let conflicts: [Conflict]
}
