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

/// What the import's builder hands the writer: a chunk of new contacts, or the first bad draft.
private struct ImportChunk: Sendable {
    /// The statements that write the contacts, planned (their encoded states, their columns, …).
    let writes: RowWrites
    /// The contacts' audit rows: kind and ID (bound as its text without a string: `SQLiteParameter`).
    let audited: [(kind: EntityKind, id: EntityID)]
    /// The chunk as one outbox change, encoded.
    let outboxChange: Data
    /// The newest stamp in the chunk.
    let last: HLC
}

/// The import's builder: validates the drafts and builds their contacts in order, on its own
/// thread (everything it reads is a value).
private struct ImportBuilder: Sendable {
    let state: TenantState
    let clock: HybridLogicalClock
    let author: Author
    let settings: DomainSettings
    let time: UInt64
    let contactsPerChange: Int

    /// What the store takes once the import committed.
    struct Finished: Sendable {
        let state: TenantState
        let clock: HybridLogicalClock
        let ids: [EntityID]
    }

    func build(_ drafts: [ContactDraft], into chunks: ImportChunks) {
        var scratch = state
        // Room for every new contact up front: growing a dictionary of 100,000 large values
        // rehashed and moved them again and again (a tenth of the import's profile).
        scratch.reserveCapacity(contacts: scratch.contacts.count + drafts.count)
        var clock = self.clock
        var current = TenantState()
        current.reserveCapacity(contacts: contactsPerChange)
        var ids = [EntityID]()
        ids.reserveCapacity(drafts.count)
        func send() -> Bool {
            // The contacts are new: no child rows to delete before inserting theirs.
            var writes = RowWrites()
            var audited = [(kind: EntityKind, id: EntityID)]()
            audited.reserveCapacity(current.contacts.count)
            for (id, contact) in current.contacts.valueByKey {
                let row = PreparedRow(id, contact, delta: contact, previous: nil, knowsPrevious: true)
                writes.add(contact, delta: contact, row)
                audited.append((.contact, row.id))
            }
            let chunk = ImportChunk(
                writes: writes, audited: audited, outboxChange: Data(current.encodedBlob()), last: clock.last)
            current = TenantState()
            current.reserveCapacity(contacts: contactsPerChange)
            return chunks.put(.success(chunk))
        }
        for (index, draft) in drafts.enumerated() {
            let context = WriteContext(author: author, stamp: clock.now(wall: time), settings: settings)
            do {
                let delta = try scratch.createContact(draft, context)
                ids.append(EntityID(creation: context.stamp))
                current.merge(delta)
            } catch {
                _ = chunks.put(
                    .failure(
                        ValidationError(
                            field: error.field, code: error.code, message: "contact #\(index + 1): \(error.message)")))
                chunks.finish(nil)
                return
            }
            if (index + 1) % contactsPerChange == 0 && !send() { return }
        }
        if !current.isBottom && !send() { return }
        chunks.finish(Finished(state: scratch, clock: clock, ids: ids))
    }
}

/// A bounded queue of chunks from the builder's thread to the writer's. A few chunks ahead is
/// enough to keep both threads busy; more would only hold memory.
///
/// Written chunks come back (``written(_:)``) and are freed on the builder's thread, which
/// allocated them: freed by the writer, each block would go back to the builder's glibc heap
/// under that heap's lock while the builder allocates the next chunk (a profile measured this
/// wait on the sync engine's writer: 2,200–2,800 lock waits per 100,000 pulled changes).
private final class ImportChunks: @unchecked Sendable {
    private let condition = NSCondition()
    private var queue = [Result<ImportChunk, ValidationError>]()
    private var writtenChunks = [ImportChunk]()
    private var done = false
    private var cancelled = false
    private var result: ImportBuilder.Finished?
    private let capacity = 8

    /// Hands a chunk over; false once the writer gave up (the builder stops). The chunks
    /// written meanwhile are freed here, on the builder's thread, outside the lock.
    func put(_ chunk: Result<ImportChunk, ValidationError>) -> Bool {
        var done = [ImportChunk]()
        defer { withExtendedLifetime(done) {} }
        condition.lock()
        defer { condition.unlock() }
        swap(&done, &writtenChunks)
        while queue.count >= capacity && !cancelled { condition.wait() }
        if cancelled { return false }
        queue.append(chunk)
        condition.broadcast()
        return true
    }

    /// A chunk the writer wrote: handed back to be freed by the builder (``put(_:)``).
    func written(_ chunk: ImportChunk) {
        condition.lock()
        defer { condition.unlock() }
        writtenChunks.append(chunk)
    }

    /// The builder is done: with what the store takes, or nil after a bad draft.
    func finish(_ finished: ImportBuilder.Finished?) {
        condition.lock()
        defer { condition.unlock() }
        result = finished
        done = true
        condition.broadcast()
    }

    /// The next chunk, waiting for it; nil when the builder is done and every chunk was taken.
    func next() -> Result<ImportChunk, ValidationError>? {
        condition.lock()
        defer { condition.unlock() }
        while queue.isEmpty && !done { condition.wait() }
        if queue.isEmpty { return nil }
        let chunk = queue.removeFirst()
        condition.broadcast()
        return chunk
    }

    /// What the builder finished with, once `next()` returned nil.
    var finished: ImportBuilder.Finished? {
        condition.lock()
        defer { condition.unlock() }
        return result
    }

    /// The writer gave up: wake the builder so it stops.
    func cancel() {
        condition.lock()
        defer { condition.unlock() }
        cancelled = true
        queue.removeAll()
        condition.broadcast()
    }
}
