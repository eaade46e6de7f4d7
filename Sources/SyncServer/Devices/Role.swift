/// What a user's devices may do. Every role syncs its tenant's data; supervisors also read the
/// tenant's conflicts; admins also manage devices, users and enrolment codes.
public enum Role: String, Codable, Sendable, CaseIterable {
    case agent
    case field
    case supervisor
    case admin

    public var canReadConflicts: Bool { self == .supervisor || self == .admin }
    public var canManageDevices: Bool { self == .admin }
}

/// Names of tenants and users: short, printable, safe in URLs, logs and file names.
public enum Names {
    /// `acme`, `call-centre-2`: lower-case letters, digits and dashes, 1–63 characters.
    public static func checkTenant(_ tenant: String) -> String? {
        let valid =
            (1...63).contains(tenant.utf8.count)
            && tenant.utf8.allSatisfy { ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2D }
            && tenant.utf8.first != 0x2D
        return valid ? nil : "a tenant is 1–63 lower-case letters, digits or dashes, not starting with a dash"
    }

    /// `jana`, `petr.novak@acme.cz`: letters, digits and `. _ @ -`, 1–64 characters.
    public static func checkUser(_ user: String) -> String? {
        let valid =
            (1...64).contains(user.utf8.count)
            && user.utf8.allSatisfy {
                ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x30 && $0 <= 0x39)
                    || $0 == 0x2E || $0 == 0x5F || $0 == 0x40 || $0 == 0x2D
            }
        return valid ? nil : "a user name is 1–64 letters, digits or . _ @ -"
    }
}
