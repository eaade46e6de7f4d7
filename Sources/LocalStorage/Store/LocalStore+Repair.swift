import CRDT
import Domain
import Foundation
import GRDB
import StoreSupport

/// What `LocalStore.repair(in:)` saved from a damaged replica file.
public struct RepairReport: Codable, Equatable, Sendable {
    public let replica: String
    public let user: String
    public let tenant: String
    /// Outbox changes carried over: not yet pushed, and refused ones (with their reasons).
    public let pendingChanges: Int
    public let refusedChanges: Int
    /// Audit-trail rows carried over.
    public let auditRows: Int
    /// True when the damage stopped the reading of the outbox or the trail before its end, or a
    /// change in the outbox did not decode: what was in the damaged part is lost.
    public let readingStopped: Bool
    /// Where the damaged file was moved (kept, never deleted).
    public let damagedFile: String
}

extension LocalStore {
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
        let path = (directory as NSString).appendingPathComponent(fileName)
        if try finishInterruptedRepair(in: directory) {
            throw StoreError(
                .io,
                "a repair of \(path) that was stopped before it finished is now finished; there is nothing to repair")
        }
        guard FileManager.default.fileExists(atPath: path) else {
            throw StoreError(.notInitialized, "there is no replica in \(directory)")
        }
        // The check opening does (a hot journal left by a kill is rolled back first, not damage).
        var damaged = false
        do { try checkIntegrity(path: path) } catch { damaged = true }
        guard damaged else {
            throw StoreError(
                .io, "\(path) is not damaged (its integrity check passes); there is nothing to repair")
        }
        let salvage = try Salvage.read(path)

        // The new file, complete and closed, in a directory of its own beside the old one.
        let building = repairDirectory(in: directory)
        try? FileManager.default.removeItem(atPath: building)
        let store = try create(in: building, identity: salvage.identity, serverURL: salvage.serverURL)
        try store.takeSalvage(salvage, wall: wall)
        let pending = salvage.outbox.filter { $0.rejectedCode == nil }.count
        // Rollback-journal mode checkpoints and removes the WAL: the file alone is the store when
        // it is moved (it opens in WAL mode again). It is fsynced, and its directory entry too,
        // before anything moves: from the moment the damaged file is moved aside, this file is
        // the replica (``finishInterruptedRepair(in:)``).
        try wrap("closing \(store.path)") {
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
    static func repairDirectory(in directory: String) -> String {
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
    package static func finishInterruptedRepair(in directory: String) throws(StoreError) -> Bool {
        let path = (directory as NSString).appendingPathComponent(fileName)
        let repaired = (repairDirectory(in: directory) as NSString).appendingPathComponent(fileName)
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
        try? files.removeItem(atPath: repairDirectory(in: directory))
        return true
    }

    /// Writes what was saved from the damaged file into this new, empty store, in ONE
    /// transaction: the outbox rows with their own sequence numbers (and the counter past
    /// them, so no number the server has seen is used again), the audit trail, the session
    /// restarting its pull, the clock past every saved stamp, and the outbox's changes applied.
    private func takeSalvage(_ salvage: Salvage, wall: UInt64) throws(StoreError) {
        var changes = TenantState()
        var clock = self.clock
        for row in salvage.outbox {
            changes.merge(row.change)
            if let newest = row.change.newestStamp { _ = try? clock.receive(newest, wall: wall) }
        }
        if let last = salvage.clockLast { _ = try? clock.receive(last, wall: wall) }
        var session = salvage.session ?? self.session
        session.restartPull()
        let finalSession = session
        let finalClock = clock
        let merged = state.merged(with: changes)
        try Self.wrap("writing the repaired replica \(path)") {
            try database.write { db in
                let outbox = try db.cachedStatement(
                    sql:
                        "INSERT INTO outbox (local_seq, change, created_hlc, rejected_code, rejected_reason) VALUES (?, ?, ?, ?, ?)"
                )
                for row in salvage.outbox {
                    try outbox.execute(arguments: [
                        Int64(row.sequence), Data(row.change.encodedBlob()), row.createdHLC, row.rejectedCode,
                        row.rejectedReason,
                    ])
                }
                let counter = max(
                    salvage.outboxCounter, salvage.outbox.map(\.sequence).max() ?? 0, session.pushCheckpoint)
                try db.execute(sql: "DELETE FROM sqlite_sequence WHERE name = 'outbox'")
                try db.execute(
                    sql: "INSERT INTO sqlite_sequence (name, seq) VALUES ('outbox', ?)", arguments: [Int64(counter)])
                // The saved trail in its order, numbered again from the new file's counter.
                let writer = RowWriter(db)
                let audit = try db.cachedStatement(
                    sql:
                        "INSERT INTO audit (at_hlc, user, device, action, entity_kind, entity_id, seq) VALUES (?, ?, ?, ?, ?, ?, ?)"
                )
                var seq = try writer.reserveAudit(salvage.audit.count)
                for row in salvage.audit {
                    try audit.execute(arguments: StatementArguments(row + [seq.databaseValue]))
                    seq += 1
                }
                if !changes.isBottom { try persistEntities(of: changes, in: merged, before: state, writer) }
                try db.execute(
                    sql: "UPDATE store_meta SET value = ? WHERE key = 'hlc_last'", arguments: [finalClock.last.text])
                try db.execute(
                    sql: "UPDATE sync_state SET session = ? WHERE id = 1", arguments: [try encodeJSON(finalSession)])
            }
        }
        state.mergeJoined(merged)
        self.session = finalSession
        self.clock = finalClock
    }

    /// What is read from a damaged file, each part as far as it can be read.
    private struct Salvage {
        struct OutboxRow {
            let sequence: UInt64
            let change: TenantState
            let createdHLC: String
            let rejectedCode: String?
            let rejectedReason: String?
        }

        let identity: ReplicaIdentity
        let serverURL: String?
        let session: ReplicaSyncSession?
        let clockLast: HLC?
        let outbox: [OutboxRow]
        /// The outbox's AUTOINCREMENT counter: the highest sequence ever used.
        let outboxCounter: UInt64
        let audit: [[DatabaseValue]]
        let readingStopped: Bool

        static func read(_ path: String) throws(StoreError) -> Salvage {
            let database: DatabaseQueue
            do {
                database = try SQLiteFile.openReadOnly(path)
            } catch {
                throw StoreError(
                    .corrupt, "\(path) cannot be opened at all (\(error)); \(LocalStore.freshReplicaRecovery)")
            }
            defer { try? database.close() }
            do {
                // Outside a transaction: a COMMIT after a damaged page was met fails too.
                return try database.inDatabase { db in try read(db, path: path) }
            } catch let error as StoreError {
                throw error
            } catch {
                throw StoreError(.corrupt, "\(path) cannot be read (\(error)); \(LocalStore.freshReplicaRecovery)")
            }
        }

        private static func read(_ db: Database, path: String) throws -> Salvage {
            var meta = [String: String]()
            if let rows = try? Row.fetchAll(db, sql: "SELECT key, value FROM store_meta") {
                for row in rows { meta[row["key"]] = row["value"] }
            }
            guard let hex = meta["replica_id"], let replica = ReplicaID(hex: hex), let user = meta["user"],
                let tenant = meta["tenant"]
            else {
                throw StoreError(
                    .corrupt,
                    "the replica's identity in \(path) cannot be read, so it cannot be rebuilt under it; "
                        + LocalStore.freshReplicaRecovery)
            }
            let syncState = try? Row.fetchOne(db, sql: "SELECT server_url, session FROM sync_state WHERE id = 1")
            let session = (syncState?["session"] as String?).flatMap {
                try? decodeJSON(ReplicaSyncSession.self, $0)
            }
            var stopped = false
            // Row by row: a damaged page ends the reading there, and what came before is kept.
            var outbox = [OutboxRow]()
            if let rows = try? Row.fetchCursor(
                db,
                sql:
                    "SELECT local_seq, change, created_hlc, rejected_code, rejected_reason FROM outbox ORDER BY local_seq"
            ) {
                while true {
                    let next: Row?
                    do { next = try rows.next() } catch {
                        stopped = true
                        break
                    }
                    guard let row = next else { break }
                    // A change whose bytes do not decode is lost; the rows after it are still read.
                    guard let change = try? TenantState(blob: row["change"] as Data) else {
                        stopped = true
                        continue
                    }
                    outbox.append(
                        OutboxRow(
                            sequence: UInt64(row["local_seq"] as Int64), change: change,
                            createdHLC: row["created_hlc"], rejectedCode: row["rejected_code"],
                            rejectedReason: row["rejected_reason"]))
                }
            } else {
                stopped = true
            }
            let counter = (try? Int64.fetchOne(db, sql: "SELECT seq FROM sqlite_sequence WHERE name = 'outbox'")) ?? nil
            var audit = [[DatabaseValue]]()
            if let rows = try? Row.fetchCursor(
                db, sql: "SELECT at_hlc, user, device, action, entity_kind, entity_id FROM audit ORDER BY seq")
            {
                while true {
                    do {
                        guard let row = try rows.next() else { break }
                        audit.append(Array(row.databaseValues))
                    } catch {
                        stopped = true
                        break
                    }
                }
            } else {
                stopped = true
            }
            return Salvage(
                identity: ReplicaIdentity(replica: replica, user: user, tenant: tenant),
                serverURL: syncState?["server_url"], session: session,
                clockLast: meta["hlc_last"].flatMap { HLC(text: $0) }, outbox: outbox,
                outboxCounter: UInt64(max(0, counter ?? 0)), audit: audit, readingStopped: stopped)
        }
    }
}
