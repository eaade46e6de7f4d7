import CRDT
import CRDTTestSupport
import Domain
import DomainTestSupport
import Foundation
import GRDB
import LocalStorage
import Replica
import ReplicaPresentation
import ReplicaTestSupport
import StoreSupport
import SystemTestSupport
import Testing

@Suite("Bulk import")
struct ImportTests {
    /// The import writes chunks while later drafts are still being checked (two threads), so a
    /// bad draft in the first chunk, in a later one (after chunks were written) and in the last
    /// must all roll the whole transaction back.
    @Test("an import is all or nothing, and names the bad row", arguments: [0, 137, 249])
    func allOrNothing(badIndex: Int) throws {
        let directory = TempDirectory()
        let store = try LocalStore.create(in: directory.path, identity: StoreTests.jana)
        let good = (0..<250).map { ContactDraft(name: "Contact \($0)", phones: ["+4206\(String(10_000_000 + $0))"]) }
        var bad = good
        bad[badIndex].emails = ["broken"]
        let clock = store.clock
        do {
            try store.importContacts(bad, wall: StoreTests.wall)
            Issue.record("imported a bad row")
        } catch {
            guard case .invalid(let validation) = error else {
                Issue.record("\(error)")
                return
            }
            #expect(validation.message.hasPrefix("contact #\(badIndex + 1):"))
            #expect(validation.field == "email")
        }
        #expect(store.state.contacts.count == 0)
        #expect(store.clock == clock)
        #expect(try store.outboxCount() == 0)
        let file = try LocalStore.open(in: directory.path)
        #expect(try file.reader.contacts().count == 0 && file.state.isBottom, "rows of the failed import were kept")
        let leftovers = try DatabaseQueue(path: directory.sub(LocalStore.fileName)).read { db in
            try Int.fetchOne(
                db,
                sql:
                    "SELECT (SELECT COUNT(*) FROM audit) + (SELECT COUNT(*) FROM entity_state) + (SELECT COUNT(*) FROM contact_phones)"
            )
        }
        #expect(leftovers == 0, "audit, state or phone rows of the failed import were kept")
        let ids = try store.importContacts(good, wall: StoreTests.wall)
        #expect(Set(ids).count == 250)
        #expect(try store.outboxCount() == 3)  // 100 + 100 + 50
        // One audit row per imported contact (their ID texts come from the builder's thread).
        for id in [ids[0], ids[123], ids[249]] {
            #expect(try store.reader.history(of: id)?.changes.map(\.action) == ["import"])
        }
        let imported = try DatabaseQueue(path: directory.sub(LocalStore.fileName)).read { db in
            try Int.fetchOne(db, sql: "SELECT COUNT(DISTINCT entity_id) FROM audit WHERE action = 'import'")
        }
        #expect(imported == 250)
        #expect(try LocalStore.open(in: directory.path).reader.contacts().count == 250)
    }
}
