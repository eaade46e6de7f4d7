import CRDT
import Foundation
import GRDB
import StoreSupport

extension ServerDatabase {
    /// The tenant's codes that can still enrol a device, oldest first.
    public func pendingCodes(tenant: String, wall: UInt64) throws(StoreError) -> [PendingCode] {
        try wrap {
            try database.read { db in try Self.pendingCodes(tenant: tenant, wall: wall, db) }
        }
    }

    /// Withdraws the tenant's pending code `id` (see ``PendingCode``): it enrols nothing from now
    /// on. A code of another tenant, used, expired or unknown is "not found".
    @discardableResult
    public func revokeCode(id: String, tenant: String, actor: String, wall: UInt64) throws -> PendingCode {
        try wrapDevices {
            try database.write { db in
                guard let code = try Self.pendingCodes(tenant: tenant, wall: wall, db).first(where: { $0.id == id })
                else {
                    throw DeviceError(
                        code: .notFound, field: "id",
                        message: "no pending enrolment code \(id) in this tenant (used, expired, revoked or unknown)")
                }
                try db.execute(
                    sql: """
                        UPDATE enrolment_code SET revoked_ms = ?
                        WHERE tenant = ? AND used_ms IS NULL AND revoked_ms IS NULL AND hex(substr(code_sha256, 1, 8)) = ?
                        """, arguments: [Int64(wall), tenant, id.uppercased()])
                try Self.audit(
                    db, wall: wall, tenant: tenant, actor: actor, action: "enrolment-code-revoked",
                    detail: ["code": id, "user": code.user, "role": code.role.rawValue])
                return code
            }
        }
    }

    static func pendingCodes(tenant: String, wall: UInt64, _ db: Database) throws -> [PendingCode] {
        try Row.fetchAll(
            db,
            sql: """
                SELECT lower(hex(substr(c.code_sha256, 1, 8))), c.user, COALESCE(c.role, u.role), c.created_ms,
                       c.expires_ms, c.rejoin_replica
                FROM enrolment_code c JOIN server_user u ON u.tenant = c.tenant AND u.name = c.user
                WHERE c.tenant = ? AND c.used_ms IS NULL AND c.revoked_ms IS NULL AND c.expires_ms > ?
                ORDER BY c.created_ms, 1
                """, arguments: [tenant, Int64(wall)]
        ).map { row in
            PendingCode(
                id: row[0], user: row[1], role: Role(rawValue: row[2]) ?? .agent, createdMs: UInt64(row[3] as Int64),
                expiresMs: UInt64(row[4] as Int64), rejoinReplica: row[5])
        }
    }
}
