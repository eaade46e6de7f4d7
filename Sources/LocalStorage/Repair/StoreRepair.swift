import CRDT
import Domain
import Foundation
import GRDB
import StoreSupport

/// Rebuilding a damaged replica file under its own identity, and finishing such a rebuild that
/// was stopped half-way. The damaged file is only read; nothing moves unless the new file is
/// complete (`LocalStore.take(_:wall:)` writes what was saved into it).
public enum StoreRepair {
    /// Rebuilds a damaged replica under its own identity — "re-bootstrap from the server after
    /// saving the outbox": the damaged file is read read-only for what only it holds (identity,
    /// server, sync session, the outbox with its sequence numbers, the audit trail), a new file
    /// is made with exactly that and the outbox's changes applied locally, the damaged file is
    /// moved aside (`replica.sqlite.damaged-<ms>`), and the new one takes its place. Everything
    /// else comes back from the server: the session restarts its pull at cursor 0, and the next
    /// sync pushes the outbox first (the server skips what it had processed already, by
    /// sequence number) and then pulls everything.
    ///
    /// Same replica ID, same device token: nothing to enrol again, and unpushed work keeps the
    /// stamps it was written with (a new replica would have to re-issue it as new edits).
    ///
    /// - Throws: ``StoreError`` — `.io` when the file is not damaged (nothing to repair) or the
    ///   new file cannot be written; `.corrupt` when even the identity cannot be read (then only
    ///   a new replica and `refused reissue --from` remain). Nothing is moved unless the new file
    ///   is complete.
    public static func repair(in directory: String, wall: UInt64) throws(StoreError) -> RepairReport {
        let path = (directory as NSString).appendingPathComponent(LocalStore.fileName)
        if try finishInterrupted(in: directory) {
            throw StoreError(
                .io,
                "a repair of \(path) that was stopped before it finished is now finished; there is nothing to repair")
        }
        guard FileManager.default.fileExists(atPath: path) else {
            throw StoreError(.notInitialized, "there is no replica in \(directory)")
        }
        // The check opening does (a hot journal left by a kill is rolled back first, not damage).
        var damaged = false
        do { try LocalStore.checkIntegrity(path: path) } catch { damaged = true }
        guard damaged else {
            throw StoreError(
                .io, "\(path) is not damaged (its integrity check passes); there is nothing to repair")
        }
        let salvage = try Salvage.read(path)

        // The new file, complete and closed, in a directory of its own beside the old one.
        let building = Self.directory(in: directory)
        try? FileManager.default.removeItem(atPath: building)
        let store = try LocalStore.create(in: building, identity: salvage.identity, serverURL: salvage.serverURL)
        try store.take(salvage, wall: wall)
        let pending = salvage.outbox.filter { $0.rejectedCode == nil }.count
        // Rollback-journal mode checkpoints and removes the WAL: the file alone is the store when
        // it is moved (it opens in WAL mode again). It is fsynced, and its directory entry too,
        // before anything moves: from the moment the damaged file is moved aside, this file is
        // the replica (``finishInterrupted(in:)``).
        try LocalStore.wrap("closing \(store.path)") {
            try store.database.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA journal_mode = DELETE") }
            try store.database.close()
        }
        try SQLiteFile.fsync(store.path)
        try SQLiteFile.fsync(building)

        // The damaged file (and whatever journal or WAL it had) moves aside, the new one in.
        let aside = path + ".damaged-\(wall)"
        for suffix in ["", "-wal", "-shm", "-journal"] where FileManager.default.fileExists(atPath: path + suffix) {
            guard rename(path + suffix, aside + suffix) == 0 else {
                throw StoreError(.io, "cannot move \(path + suffix) aside (errno \(errno)); nothing was changed")
            }
        }
        guard rename(store.path, path) == 0 else {
            throw StoreError(
                .io,
                "cannot move the repaired file \(store.path) into place (errno \(errno)); the damaged file is "
                    + "at \(aside)")
        }
        try SQLiteFile.fsync(directory)
        try? FileManager.default.removeItem(atPath: building)
        return RepairReport(
            replica: salvage.identity.replica.hex, user: salvage.identity.user, tenant: salvage.identity.tenant,
            pendingChanges: pending, refusedChanges: salvage.outbox.count - pending, auditRows: salvage.audit.count,
            readingStopped: salvage.readingStopped, damagedFile: aside)
    }

    /// Where `repair` builds the new file.
    static func directory(in directory: String) -> String {
        (directory as NSString).appendingPathComponent("repair.tmp")
    }

    /// Completes a `repair` that was stopped (killed, or the power cut) after it moved the damaged
    /// file aside and before the new one was in place — or whose renames a power cut undid in
    /// part: the directory has no replica file but a complete repaired one in `repair.tmp`. The
    /// repaired file is moved in (its directory fsynced), and true is returned.
    ///
    /// Without this the directory looked empty: every command said there is no replica, and
    /// `init` would have made a new one beside the repaired file, its unpushed changes unseen.
    /// The repaired file is complete whenever the damaged one is gone: `repair` moves nothing
    /// before it is written, closed and fsynced.
    @discardableResult
    public static func finishInterrupted(in directory: String) throws(StoreError) -> Bool {
        let path = (directory as NSString).appendingPathComponent(LocalStore.fileName)
        let repaired = (Self.directory(in: directory) as NSString).appendingPathComponent(LocalStore.fileName)
        let files = FileManager.default
        guard !files.fileExists(atPath: path), files.fileExists(atPath: repaired),
            !files.fileExists(atPath: repaired + "-wal"), !files.fileExists(atPath: repaired + "-journal")
        else { return false }
        // The damaged file's WAL or journal must not meet the new file: repair moves them aside
        // before the file, but a power cut can persist one rename and not another.
        for suffix in ["-wal", "-shm", "-journal"] where files.fileExists(atPath: path + suffix) {
            guard rename(path + suffix, path + ".damaged-interrupted" + suffix) == 0 else {
                throw StoreError(.io, "cannot move \(path + suffix) aside (errno \(errno)) to finish a repair")
            }
        }
        guard rename(repaired, path) == 0 else {
            throw StoreError(
                .io, "cannot move the repaired file \(repaired) into place (errno \(errno)) to finish a repair")
        }
        try SQLiteFile.fsync(directory)
        try? files.removeItem(atPath: Self.directory(in: directory))
        return true
    }
}
