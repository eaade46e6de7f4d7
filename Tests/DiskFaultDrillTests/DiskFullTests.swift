import CRDT
import Domain
import DomainTestSupport
import Foundation
import GRDB
import ReplicaPresentation
import ReplicaTestSupport
import StoreSupport
import SystemTestSupport
import Testing

@testable import LocalStorage
@testable import Replica

/// A replica on a laptop whose disk fills up: a write that finds no room must change nothing —
/// not the file, not the state in memory, not the outbox or the pull cursor — say so in words
/// (`disk-full`), and work again once there is room. SQLite answers SQLITE_FULL whether the disk
/// is full or the file reached `max_page_count`; the latter makes it happen here at a chosen
/// size, in-process. (`CLITests.DiskFullCLITests` fills a real file system.)
@Suite("Disk full")
struct DiskFullTests {
    static let wall: UInt64 = 1_764_000_000_000
    static let jana = ReplicaIdentity(replica: ReplicaID(0xA1), user: "jana", tenant: "acme")

    @Test("an import and a pulled batch that find no room change nothing and say so")
    func fullDiskChangesNothing() async throws {
        let directory = TempDirectory("disk-full")
        let jana = try LocalStore.create(in: directory.sub("jana"), identity: Self.jana)
        try jana.importContacts((0..<50).map { ContactDraft(name: "Jana's \($0)") }, wall: Self.wall)
        let transport = InProcessTransport(ledger: TenantLedger(epoch: ServerEpoch(rawValue: 1)))
        _ = try await SyncEngine(store: jana, transport: transport, wall: { Self.wall }).sync()
        // Another replica's 1,500 contacts wait on the server.
        let petr = try LocalStore.create(
            in: directory.sub("petr"), identity: ReplicaIdentity(replica: ReplicaID(0xB2), user: "petr", tenant: "acme")
        )
        try petr.importContacts((0..<1_500).map { ContactDraft(name: "Petr's \($0)") }, wall: Self.wall)
        _ = try await SyncEngine(store: petr, transport: transport, wall: { Self.wall }).sync()
        // A local edit not pushed yet, which must stay in the outbox.
        let first = jana.state.contacts.sortedKeys[0]
        var edit = ContactEdit()
        edit.title = "CEO"
        try jana.write(wall: Self.wall + 1) { s, c throws(ValidationError) in try s.editContact(first, edit, c) }

        // No page more than the file has now.
        try await jana.database.writeWithoutTransaction { db in
            let pages = try Int.fetchOne(db, sql: "PRAGMA page_count")!
            try db.execute(sql: "PRAGMA max_page_count = \(pages)")
        }
        let state = jana.state
        let outbox = try jana.pendingChanges()
        #expect(outbox.count == 1)
        let session = jana.session

        let drafts = (0..<2_000).map { ContactDraft(name: "Imported \($0)", phones: ["+420601\(100_000 + $0)"]) }
        #expect(
            Self.isDiskFull { () throws(WriteError) in _ = try jana.importContacts(drafts, wall: Self.wall + 2) })
        #expect(jana.state == state, "the state in memory changed")
        #expect(try jana.pendingChanges() == outbox, "the outbox changed")
        // The sync pushes the edit (that frees room, it takes none), then meets the full disk in
        // the first pulled batch: the cursor stays where it was.
        #expect(
            await Self.isDiskFull {
                _ = try await SyncEngine(store: jana, transport: transport, wall: { Self.wall + 3 }).sync()
            })
        #expect(jana.state == state, "the state in memory changed")
        #expect(try jana.pendingChanges().isEmpty && transport.ledger.state.contacts[first]?.title.value == "CEO")
        #expect(jana.session.pullCursor == session.pullCursor, "the pull cursor moved")
        #expect(try jana.reader.contacts().count == 50)

        // The words the CLI shows (exit 3, code disk-full).
        do {
            _ = try jana.importContacts(drafts, wall: Self.wall + 4)
            Issue.record("the import fitted")
        } catch {
            let failure = CommandFailure.classify(error)
            let message = failure.message(Catalogue(.en))
            #expect(failure.exitCode == 3 && failure.code == "disk-full", "\(failure)")
            #expect(message.contains("the disk is full while importing into") && message.contains("changed nothing"))
            #expect(RetryPolicy.canHeal(StoreError(.diskFull, "x")))
        }

        // Room again (a new connection has no page limit): nothing was half-written, and both
        // the import and the pull go through.
        let reopened = try LocalStore.open(in: directory.sub("jana"))
        #expect(reopened.state == state)
        #expect(try reopened.pendingChanges().isEmpty)
        #expect(reopened.session.pullCursor == session.pullCursor)
        #expect(try reopened.integrityCheck() == ["ok"])
        try reopened.importContacts(drafts, wall: Self.wall + 4)
        _ = try await SyncEngine(store: reopened, transport: transport, wall: { Self.wall + 5 }).sync()
        #expect(try reopened.reader.contacts().count == 50 + 2_000 + 1_500)
        #expect(try reopened.reader.contacts(search: "+420 601 100 007").map(\.name) == ["Imported 7"])
    }

    private static func isDiskFull(_ body: () throws(WriteError) -> Void) -> Bool {
        do {
            try body()
            return false
        } catch {
            guard case .storage(let storage) = error else { return false }
            return storage.code == .diskFull
        }
    }

    private static func isDiskFull(_ body: () async throws -> Void) async -> Bool {
        do {
            try await body()
            return false
        } catch {
            return (error as? StoreError)?.code == .diskFull
        }
    }
}
