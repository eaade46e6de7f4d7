import CRDT
import Domain
import Foundation
import GRDB
import StoreSupport

extension LocalStore {
    /// Writes what was saved from the damaged file into this new, empty store, in ONE
    /// transaction: the outbox rows with their own sequence numbers (and the counter past
    /// them, so no number the server has seen is used again), the audit trail, the session
    /// restarting its pull, the clock past every saved stamp, and the outbox's changes applied.
    func take(_ salvage: Salvage, wall: UInt64) throws(StoreError) {
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
}
