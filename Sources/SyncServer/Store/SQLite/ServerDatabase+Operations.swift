import CRDT
import Domain
import Foundation
import GRDB
import StoreSupport

extension ServerDatabase {
    /// Readiness: can the store take a write lock right now?
    public func checkWritable() throws(StoreError) {
        try wrap { try database.writeWithoutTransaction { db in try db.execute(sql: "BEGIN IMMEDIATE; ROLLBACK") } }
    }

    /// Takes an online, consistent copy of the store into `file` (SQLite's backup API: pushes
    /// keep committing meanwhile), fsyncs it, and records it for the backup-age metric.
    /// Returns the copy's size in bytes.
    @discardableResult
    public func backup(to file: String, wall: UInt64) throws(StoreError) -> Int {
        if FileManager.default.fileExists(atPath: file) {
            throw StoreError(.alreadyInitialized, "\(file) already exists; choose a new backup file")
        }
        return try wrap {
            try PrivateFile.create(file)
            let destination = try DatabaseQueue(path: file)
            try database.backup(to: destination)
            try destination.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA journal_mode = DELETE") }
            try destination.close()
            try SQLiteFile.fsync(file)
            try SQLiteFile.fsync(
                (file as NSString).deletingLastPathComponent.isEmpty
                    ? "." : (file as NSString).deletingLastPathComponent)
            let bytes = (try FileManager.default.attributesOfItem(atPath: file)[.size] as? Int) ?? 0
            try database.write { db in
                try db.execute(
                    sql: "INSERT INTO backup_log (at_ms, file, bytes) VALUES (?, ?, ?)",
                    arguments: [Int64(wall), file, bytes])
            }
            return bytes
        }
    }

    /// The last backup taken, if any.
    public func lastBackup() throws(StoreError) -> (atMs: UInt64, file: String, bytes: Int)? {
        try wrap {
            try database.read { db in
                try Row.fetchOne(db, sql: "SELECT at_ms, file, bytes FROM backup_log ORDER BY id DESC LIMIT 1")
                    .map { (atMs: UInt64($0[0] as Int64), file: $0[1], bytes: $0[2]) }
            }
        }
    }

    /// Replaces the store in `directory` with the backup `file` and gives every tenant a NEW
    /// epoch: replicas that see it re-push everything they hold (the restored server lacks what
    /// came after the backup) and pull from the start. The server must be stopped.
    public static func restore(
        from file: String, into directory: String, wall: UInt64
    ) throws(StoreError) -> [String: ServerEpoch] {
        let path = (directory as NSString).appendingPathComponent(fileName)
        return try SQLiteFile.wrap(
            "restoring \(file) into \(path)", recovery: "keep the old data directory and try again"
        ) {
            // Check the backup before touching the live file.
            let check = try SQLiteFile.check(file, thorough: true)
            guard check == ["ok"] else {
                throw StoreError(
                    .corrupt, "\(file) fails its integrity check (\(check.prefix(3).joined(separator: "; ")))")
            }
            try PrivateFile.createDirectory(directory)
            let staging = path + ".restoring"
            for suffix in ["", "-wal", "-shm"] { unlink(staging + suffix) }
            try PrivateFile.copy(file, to: staging)
            for suffix in ["-wal", "-shm"] { unlink(path + suffix) }
            guard rename(staging, path) == 0 else { throw StoreError(.io, "cannot move the restored file into place") }
            try SQLiteFile.fsync(directory)
            let store = try ServerDatabase.open(in: directory)
            return try store.database.write { db in
                var epochs = [String: ServerEpoch]()
                var generator = SystemRandomNumberGenerator()
                for tenant in try String.fetchAll(db, sql: "SELECT tenant FROM tenant_ledger") {
                    let epoch = ServerEpoch.random(using: &generator)
                    try db.execute(
                        sql: "UPDATE tenant_ledger SET epoch = ?, others_writes_before_ms = ? WHERE tenant = ?",
                        // What the restore lost was accepted with stamps up to the drift bound
                        // ahead of the server's clock; replicas may send it all back.
                        arguments: [epoch.description, Int64(wall + store.maxForwardDrift), tenant])
                    try Self.audit(
                        db, wall: wall, tenant: tenant, actor: "cli", action: "restore",
                        detail: ["from": file, "epoch": epoch.description])
                    epochs[tenant] = epoch
                }
                // Cursors of the old epoch say nothing about what a device has of the new one:
                // until it pulls again, no tombstone counts as pulled by it.
                try db.execute(sql: "UPDATE device SET cursor = 0")
                return epochs
            }
        }
    }
}
