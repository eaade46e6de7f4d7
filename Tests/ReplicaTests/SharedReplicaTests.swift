import CRDT
import CRDTTestSupport
import Domain
import DomainTestSupport
import Foundation
import ReplicaTestSupport
import StoreSupport
import SystemTestSupport
import Testing

@testable import LocalStorage
@testable import Replica

/// One replica used by two processes at once — the agents' guide says to leave `sync --watch`
/// running in one window and work in another. Each process holds the replica's state in
/// memory; two `LocalStore`s on one file (two SQLite connections) are the same situation.
///
/// The stale one once overwrote the other's writes: an edit made in one window
/// vanished from the file when the other wrote the same contact, and both gave different writes
/// the same stamp (replica, time) — which the CRDT takes for the same write.
@Suite("One replica, two processes")
struct SharedReplicaTests {
    @Test("two handles editing one contact: both edits stay, each with a stamp of its own")
    func bothEditsStay() throws {
        let directory = TempDirectory("shared-replica")
        let created = try LocalStore.create(in: directory.sub("r"), identity: StoreTests.jana)
        let id = try created.write(wall: StoreTests.wall) { s, c throws(ValidationError) in
            try s.createContact(ContactDraft(name: "Jana"), c)
        }.contacts.sortedKeys[0]
        let watch = try LocalStore.open(in: directory.sub("r"))
        let window = try LocalStore.open(in: directory.sub("r"))
        var title = ContactEdit()
        title.title = "CEO"
        try window.write(wall: StoreTests.wall + 10) { s, c throws(ValidationError) in try s.editContact(id, title, c) }
        var name = ContactEdit()
        name.name = "Jana Nováková"
        try watch.write(wall: StoreTests.wall + 10) { s, c throws(ValidationError) in try s.editContact(id, name, c) }

        let reopened = try LocalStore.open(in: directory.sub("r"))
        let contact = try #require(reopened.state.contacts[id])
        #expect(contact.name.value == "Jana Nováková" && contact.title.value == "CEO")
        #expect(watch.state == reopened.state, "the handle that reloaded holds what the file holds")
        #expect(watch.clock.last > window.clock.last, "the second write reused the first one's stamp")
        #expect(try reopened.outboxCount() == 3)
    }

    @Test("a sync in one process while another edits: the pull keeps the edit; nothing lost or doubled")
    func syncKeepsOtherProcessEdits() async throws {
        let directory = TempDirectory("shared-replica-sync")
        let transport = InProcessTransport(ledger: TenantLedger(epoch: ServerEpoch(rawValue: 1)))
        let watch = try LocalStore.create(in: directory.sub("r"), identity: StoreTests.jana)
        let petr = try LocalStore.create(
            in: directory.sub("petr"), identity: ReplicaIdentity(replica: ReplicaID(0xB2), user: "petr", tenant: "acme")
        )
        let ids = try watch.importContacts((0..<20).map { ContactDraft(name: "C\($0)") }, wall: StoreTests.wall)
        _ = try await SyncEngine(store: watch, transport: transport, wall: { StoreTests.wall }).sync()
        _ = try await SyncEngine(store: petr, transport: transport, wall: { StoreTests.wall }).sync()

        // Petr renames every contact; meanwhile, in another window of Jana's replica, she gives
        // each a title. The watching process then pulls Petr's renames.
        for id in ids {
            var rename = ContactEdit()
            rename.name = "Renamed \(id.text.prefix(4))"
            try petr.write(wall: StoreTests.wall + 5) { s, c throws(ValidationError) in try s.editContact(id, rename, c)
            }
        }
        _ = try await SyncEngine(store: petr, transport: transport, wall: { StoreTests.wall + 5 }).sync()
        let window = try LocalStore.open(in: directory.sub("r"))
        for id in ids {
            var title = ContactEdit()
            title.title = "Head of \(id.text.prefix(4))"
            try window.write(wall: StoreTests.wall + 6) { s, c throws(ValidationError) in
                try s.editContact(id, title, c)
            }
        }
        let report = try await SyncEngine(store: watch, transport: transport, wall: { StoreTests.wall + 7 }).sync()
        #expect(report.pushedChanges == 20 && report.pulledChanges >= 20, "\(report)")

        let reopened = try LocalStore.open(in: directory.sub("r"))
        for id in ids {
            let contact = try #require(reopened.state.contacts[id])
            #expect(contact.title.value == "Head of \(id.text.prefix(4))", "the window's edit was lost")
            #expect(contact.name.value == "Renamed \(id.text.prefix(4))", "Petr's rename was not applied")
        }
        #expect(watch.state == reopened.state)
        #expect(try reopened.outboxCount() == 0)
        _ = try await SyncEngine(store: petr, transport: transport, wall: { StoreTests.wall + 8 }).sync()
        #expect(petr.state == reopened.state, "the replicas differ")
    }

    /// Random edits through two handles of one replica, syncs through either, and another
    /// replica's edits; after every step a fresh open of the file must hold every tag any
    /// handle reported added (a stale handle's write would drop some), and at the end all
    /// replicas and the server agree.
    @Test(
        "random edits and syncs through two handles of one replica lose no reported write",
        arguments: FuzzSettings.seeds(count: 3, longCount: 40, base: 0x5_4A2E))
    func randomSharedUse(seed: UInt64) async throws {
        print("shared replica: seed \(seed) (KRALIKI_SEED=\(seed) replays)")
        var rng = SeededRandom(seed: seed)
        let directory = TempDirectory("shared-replica-fuzz")
        let transport = InProcessTransport(ledger: TenantLedger(epoch: ServerEpoch(rawValue: 1)))
        let first = try LocalStore.create(in: directory.sub("r"), identity: StoreTests.jana)
        let ids = try first.importContacts((0..<6).map { ContactDraft(name: "C\($0)") }, wall: StoreTests.wall)
        let handles = [first, try LocalStore.open(in: directory.sub("r"))]
        let petr = try LocalStore.create(
            in: directory.sub("petr"), identity: ReplicaIdentity(replica: ReplicaID(0xB2), user: "petr", tenant: "acme")
        )
        var added = [EntityID: Set<String>]()
        var wall = StoreTests.wall
        for step in 0..<80 {
            wall += UInt64(rng.int(0...2))  // the same millisecond often: stamps must still differ
            let now = wall
            let id = rng.pick(ids)
            switch rng.int(0...9) {
            case 0...5:
                let handle = rng.pick(handles)
                var edit = ContactEdit()
                edit.addTags = ["t\(step)"]
                if rng.chance(0.3) { edit.title = "T\(step)" }
                try handle.write(wall: now) { s, c throws(ValidationError) in try s.editContact(id, edit, c) }
                added[id, default: []].insert("t\(step)")
            case 6, 7:
                _ = try await SyncEngine(store: rng.pick(handles), transport: transport, wall: { now }).sync()
            default:
                if !petr.state.contacts.sortedKeys.isEmpty {
                    var edit = ContactEdit()
                    edit.name = "P\(step)"
                    try petr.write(wall: now) { s, c throws(ValidationError) in try s.editContact(id, edit, c) }
                }
                _ = try await SyncEngine(store: petr, transport: transport, wall: { now }).sync()
            }
            let file = try LocalStore.open(in: directory.sub("r"))
            for (id, tags) in added {
                let missing = tags.subtracting(file.state.contacts[id]?.tags.elements ?? [])
                #expect(missing.isEmpty, "seed \(seed) step \(step): tags \(missing.sorted()) of \(id) lost")
            }
        }
        for store in handles + [petr] + handles {
            _ = try await SyncEngine(store: store, transport: transport, wall: { wall }).sync()
        }
        let file = try LocalStore.open(in: directory.sub("r"))
        #expect(file.state == petr.state && file.state == transport.ledger.state, "seed \(seed): replicas differ")
        #expect(try file.outboxCount() == 0)
    }
}
