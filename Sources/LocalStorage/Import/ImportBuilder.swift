import CRDT
import Domain
import Foundation
import GRDB
import StoreSupport

/// The import's builder: validates the drafts and builds their contacts in order, on its own
/// thread (everything it reads is a value).
struct ImportBuilder: Sendable {
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
