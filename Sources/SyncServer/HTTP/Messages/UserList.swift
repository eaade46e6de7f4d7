/// `GET /v1/admin/users`: the tenant's users and their roles.
struct UserList: Codable {
    struct User: Codable {
        let name: String
        let role: Role
    }

    let users: [User]
}
