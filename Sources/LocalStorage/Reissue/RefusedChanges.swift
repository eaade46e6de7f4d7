import CRDT
import Domain
import Foundation
import GRDB
import StoreSupport

/// The changes the server refused to one replica, read from its file without changing it.
///
/// Used from a fresh replica to re-issue the work of an old one whose changes can never be
/// accepted (its clock ran a year ahead and its HLC never goes back; an edit of a record
/// collected on the server). The old file is opened read-only and not migrated.
public struct RefusedChanges: Sendable {
    /// One refused outbox entry: the change as the old replica wrote it, and the server's reason.
    public struct Change: Sendable {
        public let localSequence: UInt64
        public let code: String
        public let reason: String
        public let change: TenantState
    }

    public let directory: String
    public let identity: ReplicaIdentity
    public let changes: [Change]

    /// Reads the refused changes of the replica in `directory`, oldest first.
    ///
    /// - Throws: ``ReissueError`` (`not-a-replica`) when `directory` holds no replica store, or
    ///   ``StoreError`` when the store cannot be read.
    public static func read(from directory: String) throws -> RefusedChanges {
        let path = (directory as NSString).appendingPathComponent(LocalStore.fileName)
        guard FileManager.default.fileExists(atPath: path) else { throw ReissueError.notAReplica(directory) }
        let database: DatabaseQueue
        do {
            database = try SQLiteFile.openReadOnly(path)
        } catch {
            throw ReissueError.notAReplica(directory, underlying: error)
        }
        defer { try? database.close() }
        // `nil` when the file is a database but not a replica store (thrown outside: `wrap` would
        // turn the error into a store failure).
        let read = try SQLiteFile.wrap("reading the refused changes of \(path)", recovery: LocalStore.recovery) {
            try database.read { db -> RefusedChanges? in
                // Only a file from a newer build could lay out its outbox differently.
                let version = try Int.fetchOne(db, sql: "PRAGMA user_version") ?? 0
                guard version <= schemaMigrations.count else {
                    throw StoreError(
                        .newerSchema, "\(path) was written by a newer Kraliki Sync; read it with that build")
                }
                guard try db.tableExists("store_meta"), try db.tableExists("outbox") else { return nil }
                var meta = [String: String]()
                for row in try Row.fetchAll(db, sql: "SELECT key, value FROM store_meta") {
                    meta[row["key"]] = row["value"]
                }
                guard let hex = meta["replica_id"], let replica = ReplicaID(hex: hex), let user = meta["user"],
                    let tenant = meta["tenant"]
                else { return nil }
                let rows = try Row.fetchAll(
                    db,
                    sql: """
                        SELECT local_seq, change, rejected_code, rejected_reason FROM outbox
                        WHERE rejected_code IS NOT NULL ORDER BY local_seq
                        """)
                let changes = try rows.map { row throws -> Change in
                    let sequence: Int64 = row["local_seq"]
                    do {
                        return Change(
                            localSequence: UInt64(sequence), code: row["rejected_code"], reason: row["rejected_reason"],
                            change: try TenantState(blob: row["change"] as Data))
                    } catch {
                        throw StoreError(.corrupt, "refused change \(sequence) in \(path) does not decode (\(error))")
                    }
                }
                return RefusedChanges(
                    directory: directory, identity: ReplicaIdentity(replica: replica, user: user, tenant: tenant),
                    changes: changes)
            }
        }
        guard let read else { throw ReissueError.notAReplica(directory) }
        return read
    }
}
