import CRDT
import Domain
import Foundation
import GRDB
import StoreSupport

/// What `StoreRepair` saves from a damaged replica file: what only that file holds.
struct Salvage {
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
