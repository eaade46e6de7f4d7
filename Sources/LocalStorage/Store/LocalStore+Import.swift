import CRDT
import Domain
import Foundation
import GRDB
import StoreSupport

extension LocalStore {
    /// Creates many contacts in ONE transaction (a CSV import, a migration from another CRM):
    /// all or nothing. Each contact gets its own stamp and ID; the outbox gets one change per
    /// `contactsPerChange` contacts so pushes stay bounded.
    ///
    /// Two threads share the work: one validates the drafts and builds each chunk of contacts
    /// (their CRDT values, encoded state and outbox change) while the store's writer writes the
    /// chunk before it. A bad draft ends the transaction before it commits, so nothing of the
    /// import is kept.
    ///
    /// - Throws: ``WriteError/invalid(_:)`` naming the first bad draft (by its position) and
    ///   changing nothing; ``WriteError/storage(_:)`` when the commit fails.
    @discardableResult
    public func importContacts(
        _ drafts: [ContactDraft], wall: UInt64, contactsPerChange: Int = 100
    ) throws(WriteError)
        -> [EntityID]
    {
        // As `write`: another process wrote since this store read the file — reload, run again.
        var attempt = 1
        while true {
            do {
                return try importOnce(drafts, wall: wall, contactsPerChange: contactsPerChange)
            } catch .storage(let error) where error.code == .changedElsewhere && attempt < 5 {
                attempt += 1
                do { try reload() } catch { throw .storage(error) }
            }
        }
    }

    private func importOnce(
        _ drafts: [ContactDraft], wall: UInt64, contactsPerChange: Int
    ) throws(WriteError)
        -> [EntityID]
    {
        precondition(contactsPerChange > 0)
        let chunks = ImportChunks()
        let builder = ImportBuilder(
            state: state, clock: clock, author: Author(user: identity.user, device: identity.replica),
            settings: options.settings, time: correctedTime(wall: wall), contactsPerChange: contactsPerChange)
        // A thread of its own: the writer blocks while it waits for chunks, and a pool (the
        // global dispatch queues, Swift's cooperative pool) need not have a second thread free.
        Thread { builder.build(drafts, into: chunks) }.start()
        var invalid: ValidationError?
        do {
            try Self.wrap("importing into \(path)") {
                try database.write { db in
                    try requireCurrent(db)
                    let writer = RowWriter(db)
                    let insert = try db.cachedStatement(sql: "INSERT INTO outbox (change, created_hlc) VALUES (?, ?)")
                    while let chunk = chunks.next() {
                        switch chunk {
                        case .failure(let error):
                            invalid = error
                            throw error  // rolls the transaction back
                        case .success(let chunk):
                            try chunk.writes.run(writer)
                            try insert.execute(arguments: [chunk.outboxChange, chunk.last.text])
                            try audit(chunk.audited, stamp: chunk.last, user: identity.user, action: "import", writer)
                            chunks.written(chunk)
                        }
                    }
                    try db.execute(
                        sql: "UPDATE store_meta SET value = ? WHERE key = 'hlc_last'",
                        arguments: [chunks.finished!.clock.last.text])
                }
            }
        } catch {
            // Let the builder stop, then say why the import failed.
            chunks.cancel()
            if let invalid { throw .invalid(invalid) }
            throw .storage(error)
        }
        let finished = chunks.finished!
        state = finished.state
        clock = finished.clock
        return finished.ids
    }
}
