import CRDT
import Domain
import Testing

/// `Entity.writers(of:unseenBy:)`: whom a receiver's audit trail names for a change it pulled.
@Suite("Writers of a pulled change")
struct WritersTests {
    static func context(_ user: String, _ device: UInt64, _ time: UInt64) -> WriteContext {
        WriteContext(
            author: Author(user: user, device: ReplicaID(device)), stamp: HLC(time: time, replica: ReplicaID(device)))
    }

    /// Jana creates a contact; Petr and Eva each change its company without seeing the other's
    /// edit (Eva's is older, so both values stay, as siblings).
    static func world() throws -> (created: TenantState, petr: TenantState, eva: TenantState, id: EntityID) {
        var created = TenantState()
        let creation = try created.createContact(
            ContactDraft(name: "Jana Nováková", company: "Acme", phones: ["+420601000001"]), context("jana", 1, 100))
        let id = creation.contacts.sortedKeys[0]
        var edit = ContactEdit()
        edit.company = "Acme s.r.o."
        var petr = created
        _ = try petr.editContact(id, edit, context("petr", 2, 300))
        edit.company = "ACME a.s."
        var eva = created
        _ = try eva.editContact(id, edit, context("eva", 3, 200))
        return (created, petr, eva, id)
    }

    @Test("a write the receiver saw is not named again, even when it is the field's newest")
    func seenWritesAreNotNamed() throws {
        let (created, petr, eva, id) = try Self.world()
        // The receiver saw Jana's creation and Petr's edit; the server sends the contact with both
        // companies. Petr's is the field's newest write, but only Eva's is news here.
        let before = petr.contacts[id]!
        let delta = eva.merging(petr).contacts[id]!
        #expect(Contact.writers(of: delta, unseenBy: before) == [Dot(replica: ReplicaID(3), counter: 200)])
        // What it holds already coming back: nobody named, and nothing changed.
        #expect(Contact.writers(of: before, unseenBy: before).isEmpty)
        #expect(Contact.changedFields(touchedBy: before, from: before, to: before).isEmpty)
        // A replica seeing the contact for the first time names all three, oldest first.
        let fresh = Contact.writers(of: delta, unseenBy: Contact())
        #expect(fresh.map(\.replica) == [ReplicaID(1), ReplicaID(3), ReplicaID(2)], "\(fresh)")
        _ = created
    }

    @Test("a change that only removes a set element names nobody: it carries no write")
    func removalNamesNobody() throws {
        let (created, _, _, id) = try Self.world()
        var remover = created
        var edit = ContactEdit()
        edit.removePhones = ["+420601000001"]
        let removal = try remover.editContact(id, edit, Self.context("jana", 1, 400))
        let before = created.contacts[id]!
        let delta = removal.contacts[id]!
        #expect(Contact.writers(of: delta, unseenBy: before).isEmpty)
        let changed = Contact.changedFields(touchedBy: delta, from: before, to: before.merging(delta))
        #expect(!changed.isEmpty, "the phone's removal is a visible change")
    }
}
