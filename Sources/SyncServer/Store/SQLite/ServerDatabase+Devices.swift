import CRDT
import Crypto
import Domain
import Foundation
import GRDB
import StoreSupport

extension ServerDatabase {
    /// How long an enrolment code stays valid by default: one day.
    public static let defaultCodeLifetimeMs: UInt64 = 24 * 3_600_000

    /// Creates (or updates the role of) `user` in `tenant` and a one-time enrolment code for them.
    /// Works while a server runs on the same file (SQLite serializes the writers).
    /// Issues a one-time code that enrols a device of `user` with `role`. The role is stored on
    /// the code and given when the code is used: issuing a code changes nobody's rights (a new
    /// user is created with the role, and has no device until the code is used).
    /// `rejoinReplica`: the replica ID a rejoin with this code must claim (disaster recovery); the
    /// code then serves that rejoin only.
    public func createEnrolmentCode(
        tenant: String, user: String, role: Role, wall: UInt64,
        lifetimeMs: UInt64 = ServerDatabase.defaultCodeLifetimeMs,
        actor: String, rejoinReplica: ReplicaID? = nil
    ) throws -> EnrolmentCode {
        if let reason = Names.checkTenant(tenant) {
            throw DeviceError(code: .invalidName, field: "tenant", message: reason)
        }
        if let reason = Names.checkUser(user) { throw DeviceError(code: .invalidName, field: "user", message: reason) }
        if let rejoinReplica, rejoinReplica.rawValue == 0 {
            throw DeviceError(
                code: .invalidName, field: "rejoinReplica", message: "a replica ID is 16 hexadecimal digits")
        }
        guard lifetimeMs >= 1, lifetimeMs <= 366 * 86_400_000 else {
            throw DeviceError(code: .invalidName, field: "lifetime", message: "a code lives 1 ms to a year")
        }
        let code = Self.makeCode()
        let expires = wall + lifetimeMs
        try wrapDevices {
            try database.write { db in
                try db.execute(
                    sql: """
                        INSERT INTO server_user (tenant, name, role, created_ms) VALUES (?, ?, ?, ?)
                        ON CONFLICT (tenant, name) DO NOTHING
                        """, arguments: [tenant, user, role.rawValue, Int64(wall)])
                try db.execute(
                    sql: """
                        INSERT INTO enrolment_code (code_sha256, tenant, user, created_ms, expires_ms, role, rejoin_replica)
                        VALUES (?, ?, ?, ?, ?, ?, ?)
                        """,
                    arguments: [
                        Self.digest(Self.normalizedCode(code)), tenant, user, Int64(wall), Int64(expires),
                        role.rawValue,
                        rejoinReplica?.hex,
                    ])
                var detail = ["user": user, "role": role.rawValue, "expires_ms": String(expires)]
                if let rejoinReplica { detail["rejoin"] = rejoinReplica.hex }
                try Self.audit(db, wall: wall, tenant: tenant, actor: actor, action: "enrolment-code", detail: detail)
            }
        }
        return EnrolmentCode(code: code, tenant: tenant, user: user, role: role, expiresMs: expires)
    }

    /// Exchanges a one-time code for a new device and its token. The code is spent in the same
    /// transaction that creates the device, so it cannot enrol twice.
    ///
    /// `rejoining`: the replica ID of an existing replica whose server was lost without a backup
    /// (disaster recovery): the device keeps that ID — so its store, its stamps and its outbox
    /// stay valid — when no device of this server has it yet. It then meets a new epoch and
    /// pushes everything it holds.
    public func enrol(code: String, wall: UInt64, rejoining: RejoinClaim? = nil) throws -> Enrolment {
        let hash = Self.digest(Self.normalizedCode(code))
        let token = Self.makeToken()
        return try wrapDevices {
            try database.write { db -> Enrolment in
                guard
                    let row = try Row.fetchOne(
                        db,
                        sql: """
                            SELECT c.tenant, c.user, c.expires_ms, c.used_ms, COALESCE(c.role, u.role),
                                   c.rejoin_replica, c.revoked_ms
                            FROM enrolment_code c
                            JOIN server_user u ON u.tenant = c.tenant AND u.name = c.user WHERE c.code_sha256 = ?
                            """, arguments: [hash]),
                    (row[3] as Int64?) == nil, (row[6] as Int64?) == nil, UInt64(row[2] as Int64) > wall
                else {
                    throw DeviceError(
                        code: .invalidCode, field: "code",
                        message: "the enrolment code is unknown, already used or expired; ask an admin for a new one")
                }
                let tenant: String = row[0]
                let user: String = row[1]
                let role = Role(rawValue: row[4]) ?? .agent
                let rejoinReplica: String? = row[5]
                var id: String
                if let rejoinReplica, rejoining?.replica.lowercased() != rejoinReplica {
                    throw DeviceError(
                        code: .invalidCode, field: "code",
                        message:
                            "this code was issued for replica \(rejoinReplica) to rejoin; that replica must use it "
                            + "(`replica-cli init --rejoin`)")
                }
                if let rejoining {
                    guard let replica = ReplicaID(hex: rejoining.replica), replica.rawValue != 0 else {
                        throw DeviceError(
                            code: .invalidName, field: "rejoining.replica",
                            message: "a replica ID is 16 hexadecimal digits")
                    }
                    // A rejoin keeps the replica's stamps: only the replica the issuing admin
                    // named may claim them (any other ID would let a code's holder write under
                    // another user's stamps after a restore freed it).
                    guard rejoinReplica == replica.hex else {
                        throw DeviceError(
                            code: .invalidCode, field: "code",
                            message:
                                "this code does not name replica \(replica.hex) for a rejoin; ask an admin for a "
                                + "rejoin code for it (`sync-server enroll --rejoin \(replica.hex)`)")
                    }
                    // Checked before the code is spent: a replica keeps its tenant and user.
                    guard rejoining.tenant == tenant, rejoining.user == user else {
                        throw DeviceError(
                            code: .invalidCode, field: "code",
                            message:
                                "this code is for \(user) in \(tenant), but the replica belongs to \(rejoining.user) in "
                                + "\(rejoining.tenant); ask for a code for \(rejoining.user)")
                    }
                    id = replica.hex
                    if try Bool.fetchOne(db, sql: "SELECT 1 FROM device WHERE id = ?", arguments: [id]) == true {
                        throw DeviceError(
                            code: .deviceTaken, field: "rejoining",
                            message:
                                "device \(id) is already enrolled on this server; a replica rejoins only a server that lost it"
                        )
                    }
                } else {
                    repeat {
                        id = ReplicaID.random().hex
                    } while try Bool.fetchOne(db, sql: "SELECT 1 FROM device WHERE id = ?", arguments: [id]) == true
                }
                try db.execute(
                    sql: "INSERT INTO device (id, tenant, user, token_sha256, created_ms) VALUES (?, ?, ?, ?, ?)",
                    arguments: [id, tenant, user, Self.digest(token), Int64(wall)])
                try db.execute(
                    sql: "UPDATE enrolment_code SET used_ms = ?, device = ? WHERE code_sha256 = ?",
                    arguments: [Int64(wall), id, hash])
                // The code's role, from now on, for every device of the user.
                try db.execute(
                    sql: "UPDATE server_user SET role = ? WHERE tenant = ? AND name = ?",
                    arguments: [role.rawValue, tenant, user])
                try Self.audit(
                    db, wall: wall, tenant: tenant, actor: id, action: rejoining == nil ? "enrol" : "rejoin",
                    detail: ["user": user, "device": id])
                return Enrolment(deviceId: id, tenant: tenant, user: user, role: role, token: token)
            }
        }
    }

    /// The device a bearer token belongs to (revoked ones included; the caller refuses them).
    public func device(token: String) throws(StoreError) -> DeviceRecord? {
        let hash = Self.digest(token)
        return try wrap {
            try database.read { db in
                try Row.fetchOne(
                    db.cachedStatement(sql: Self.deviceSelect + " WHERE d.token_sha256 = ?"), arguments: [hash]
                )
                .map(Self.deviceRecord)
            }
        }
    }

    /// Whether `device` was revoked (or no longer exists).
    public func isRevoked(device: String) throws(StoreError) -> Bool {
        try wrap {
            try database.read { db in
                try Row.fetchOne(
                    db.cachedStatement(sql: "SELECT revoked_ms FROM device WHERE id = ?"), arguments: [device]
                )
                .map { ($0[0] as Int64?) != nil } ?? true
            }
        }
    }

    /// The tenant's devices, newest first.
    public func devices(tenant: String) throws(StoreError) -> [DeviceRecord] {
        try wrap {
            try database.read { db in
                try Row.fetchAll(
                    db, sql: Self.deviceSelect + " WHERE d.tenant = ? ORDER BY d.created_ms DESC, d.id",
                    arguments: [tenant]
                ).map(Self.deviceRecord)
            }
        }
    }

    /// Every tenant's devices (for metrics).
    public func allDevices() throws(StoreError) -> [DeviceRecord] {
        try wrap { try database.read { db in try Row.fetchAll(db, sql: Self.deviceSelect).map(Self.deviceRecord) } }
    }

    /// Revokes `device` of `tenant`; its token stops working at its next request. A device of
    /// another tenant is "not found" (never revealed).
    @discardableResult
    public func revoke(device: String, tenant: String, actor: String, wall: UInt64) throws -> DeviceRecord {
        try wrapDevices {
            try database.write { db in
                try db.execute(
                    sql: "UPDATE device SET revoked_ms = COALESCE(revoked_ms, ?) WHERE id = ? AND tenant = ?",
                    arguments: [Int64(wall), device, tenant])
                guard
                    let row = try Row.fetchOne(
                        db, sql: Self.deviceSelect + " WHERE d.id = ? AND d.tenant = ?", arguments: [device, tenant])
                else {
                    throw DeviceError(
                        code: .notFound, field: "id", message: "there is no device \(device) in this tenant")
                }
                try Self.audit(
                    db, wall: wall, tenant: tenant, actor: actor, action: "revoke", detail: ["device": device])
                return Self.deviceRecord(row)
            }
        }
    }

    /// The tenant's users and roles.
    public func users(tenant: String) throws(StoreError) -> [(name: String, role: Role)] {
        try wrap {
            try database.read { db in
                try Row.fetchAll(
                    db, sql: "SELECT name, role FROM server_user WHERE tenant = ? ORDER BY name", arguments: [tenant]
                )
                .map { (name: $0[0], role: Role(rawValue: $0[1]) ?? .agent) }
            }
        }
    }

    /// Writes gathered device activity in one transaction. The cursor is the newest pull's: a
    /// flush that commits after a later one (two flushes racing, or two server processes) does
    /// not move it back, while a device that pulls from an earlier cursor again (re-bootstrap,
    /// a new epoch) has pulled only that far.
    public func record(activity: [String: DeviceActivity]) throws(StoreError) {
        if activity.isEmpty { return }
        try wrap {
            try database.write { db in
                for (device, seen) in activity {
                    // SET expressions read the row as it was: `last_pull_ms` below is the old one.
                    let pulled = seen.lastPullMs.map(Int64.init)
                    let cursor = seen.cursor.map { Int64(clamping: $0) }
                    try db.cachedStatement(
                        sql: """
                            UPDATE device SET last_seen_ms = MAX(COALESCE(last_seen_ms, 0), ?),
                                cursor = CASE WHEN ? IS NOT NULL AND ? IS NOT NULL AND ? >= COALESCE(last_pull_ms, 0)
                                    THEN ? ELSE cursor END,
                                last_pull_ms = CASE WHEN ? IS NULL THEN last_pull_ms
                                    ELSE MAX(COALESCE(last_pull_ms, 0), ?) END
                            WHERE id = ?
                            """
                    ).execute(arguments: [
                        Int64(seen.lastSeenMs), pulled, cursor, pulled, cursor, pulled, pulled, device,
                    ])
                }
            }
        }
    }

    /// The admin audit log of `tenant` (oldest first).
    public func auditLog(
        tenant: String
    ) throws(StoreError) -> [(atMs: UInt64, actor: String, action: String, detail: String)] {
        try wrap {
            try database.read { db in
                try Row.fetchAll(
                    db, sql: "SELECT at_ms, actor, action, detail FROM admin_audit WHERE tenant = ? ORDER BY id",
                    arguments: [tenant]
                ).map { (atMs: UInt64($0[0] as Int64), actor: $0[1], action: $0[2], detail: $0[3]) }
            }
        }
    }

    // MARK: Helpers

    static let deviceSelect = """
        SELECT d.id, d.tenant, d.user, u.role, d.created_ms, d.revoked_ms, d.last_seen_ms, d.last_push_ms,
            d.last_pull_ms, d.cursor
        FROM device d JOIN server_user u ON u.tenant = d.tenant AND u.name = d.user
        """

    static func deviceRecord(_ row: Row) -> DeviceRecord {
        DeviceRecord(
            id: row[0], tenant: row[1], user: row[2], role: Role(rawValue: row[3]) ?? .agent,
            createdMs: UInt64(row[4] as Int64), revokedMs: (row[5] as Int64?).map(UInt64.init),
            lastSeenMs: (row[6] as Int64?).map(UInt64.init), lastPushMs: (row[7] as Int64?).map(UInt64.init),
            lastPullMs: (row[8] as Int64?).map(UInt64.init), cursor: UInt64(row[9] as Int64))
    }

    static func audit(
        _ db: Database, wall: UInt64, tenant: String, actor: String, action: String, detail: [String: String]
    )
        throws
    {
        let json = String(
            decoding: try JSONSerialization.data(withJSONObject: detail, options: [.sortedKeys]), as: UTF8.self)
        try db.execute(
            sql: "INSERT INTO admin_audit (at_ms, tenant, actor, action, detail) VALUES (?, ?, ?, ?, ?)",
            arguments: [Int64(wall), tenant, actor, action, json])
    }

    /// Crockford base32 without I, L, O, U: readable over the phone.
    static let codeAlphabet = Array("0123456789ABCDEFGHJKMNPQRSTVWXYZ")

    /// 20 random symbols (100 bits) in groups of four: `K7QD-2M9X-…`.
    static func makeCode() -> String {
        var generator = SystemRandomNumberGenerator()
        let symbols = (0..<20).map { _ in codeAlphabet[Int.random(in: 0..<32, using: &generator)] }
        return stride(from: 0, to: 20, by: 4).map { String(symbols[$0..<$0 + 4]) }.joined(separator: "-")
    }

    static func normalizedCode(_ code: String) -> String {
        code.uppercased().filter { $0 != "-" && $0 != " " }
    }

    /// `kst_` and 256 random bits, base64url.
    static func makeToken() -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) }
        let base64 = Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
        return "kst_" + base64
    }

    static func digest(_ text: String) -> Data { Data(SHA256.hash(data: Data(text.utf8))) }

    func wrapDevices<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as DeviceError {
            throw error
        } catch {
            return try SQLiteFile.wrap("using the server store \(path)", recovery: Self.recovery) { throw error }
        }
    }
}
