import CRDT
import Domain
import Foundation
import GRDB

extension LocalStore {
    /// Creates many contacts in ONE transaction (a CSV import, a migration from another CRM):
    /// all or nothing. Each contact gets its own stamp and ID; the outbox gets one change per
    /// `contactsPerChange` contacts so pushes stay bounded.
    ///
    /// - Throws: ``WriteError/invalid(_:)`` naming the first bad draft (by its position) and
    ///   changing nothing; ``WriteError/storage(_:)`` when the commit fails.
    @discardableResult
    public func importContacts(
        _ drafts: [ContactDraft], wall: UInt64, contactsPerChange: Int = 100
    ) throws(WriteError)
        -> [EntityID]
    {
        precondition(contactsPerChange > 0)
        let before = state
        var scratch = state
        // Room for every new contact up front: growing a dictionary of 100,000 large values
        // rehashed and moved them again and again (a tenth of the import's profile).
        scratch.reserveCapacity(contacts: scratch.contacts.count + drafts.count)
        var clock = self.clock
        let author = Author(user: identity.user, device: identity.replica)
        var changes = [TenantState]()
        var current = TenantState()
        current.reserveCapacity(contacts: contactsPerChange)
        var ids = [EntityID]()
        ids.reserveCapacity(drafts.count)
        let time = correctedTime(wall: wall)
        for (index, draft) in drafts.enumerated() {
            let context = WriteContext(author: author, stamp: clock.now(wall: time), settings: options.settings)
            do {
                let delta = try scratch.createContact(draft, context)
                ids.append(EntityID(creation: context.stamp))
                current.merge(delta)
            } catch {
                throw .invalid(
                    ValidationError(
                        field: error.field, code: error.code, message: "contact #\(index + 1): \(error.message)"))
            }
            if (index + 1) % contactsPerChange == 0 {
                changes.append(current)
                current = TenantState()
                current.reserveCapacity(contacts: contactsPerChange)
            }
        }
        if !current.isBottom { changes.append(current) }
        let finalState = scratch
        let last = clock.last
        do {
            try Self.wrap("importing into \(path)") {
                try database.write { db in
                    let writer = RowWriter(db)
                    let insert = try db.cachedStatement(sql: "INSERT INTO outbox (change, created_hlc) VALUES (?, ?)")
                    for change in changes {
                        // The contacts are new: no child rows to delete before inserting theirs.
                        try persistEntities(of: change, in: finalState, before: before, writer)
                        try insert.execute(arguments: [Data(change.encodedBlob()), last.text])
                        try audit(change, stamp: last, user: identity.user, action: "import", writer)
                    }
                    try db.execute(
                        sql: "UPDATE store_meta SET value = ? WHERE key = 'hlc_last'", arguments: [last.text])
                }
            }
        } catch {
            throw .storage(error)
        }
        state = finalState
        self.clock = clock
        return ids
    }
}
