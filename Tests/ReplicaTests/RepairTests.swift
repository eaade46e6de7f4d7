import CRDT
import Domain
import DomainTestSupport
import Foundation
import GRDB
import LocalStorage
import Replica
import ReplicaTestSupport
import StoreSupport
import SystemTestSupport
import Testing

/// `StoreRepair.repair(in:)`: a damaged replica rebuilt under its own identity, its unpushed work
/// kept, everything else pulled again.
@Suite("Repair of a damaged replica")
struct RepairTests {
    static let wall: UInt64 = 1_764_000_000_000
    static let jana = ReplicaIdentity(replica: ReplicaID(0xA1), user: "jana", tenant: "acme")

    static func add(_ store: LocalStore, _ names: [String]) throws {
        for (index, name) in names.enumerated() {
            try store.write(wall: wall + UInt64(index)) { s, c throws(ValidationError) in
                try s.createContact(ContactDraft(name: name, phones: ["+42060\(1_000_000 + index)"]), c)
            }
        }
    }

    /// Overwrites the first page of one B-tree (an index the listing uses) with garbage: the
    /// integrity check fails, the identity and the outbox stay readable.
    static func damage(_ path: String, tree: String) throws {
        let (page, size) = try DatabaseQueue(path: path).writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE)")
            return (
                try Int.fetchOne(db, sql: "SELECT rootpage FROM sqlite_master WHERE name = ?", arguments: [tree])!,
                try Int.fetchOne(db, sql: "PRAGMA page_size")!
            )
        }
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: path))
        try handle.seek(toOffset: UInt64((page - 1) * size))
        handle.write(Data(repeating: 0xA5, count: size))
        try handle.close()
    }

    /// Damage where only the server's copy is lost (an index of the contact list), and damage
    /// of the audit trail itself (its rows up to the damaged page are kept, and the report says
    /// the reading stopped).
    @Test(
        "a damaged replica is rebuilt under its own ID: unpushed work kept and pushed once, the rest pulled again",
        arguments: ["contacts_listing", "audit"])
    func damagedReplicaRepaired(tree: String) async throws {
        let directory = TempDirectory()
        let transport = InProcessTransport(ledger: TenantLedger(epoch: ServerEpoch(rawValue: 7)))
        let path = directory.sub("jana") + "/" + LocalStore.fileName
        do {
            let jana = try LocalStore.create(in: directory.sub("jana"), identity: Self.jana)
            try Self.add(jana, (0..<30).map { "Synced \($0)" })
            _ = try await SyncEngine(store: jana, transport: transport, wall: { Self.wall }).sync()
            try Self.add(jana, (0..<5).map { "Offline \($0)" })
            #expect(try jana.outboxCount() == 5)
        }
        try Self.damage(path, tree: tree)
        #expect(throws: StoreError.self) { try LocalStore.open(in: directory.sub("jana")) }

        let report = try StoreRepair.repair(in: directory.sub("jana"), wall: Self.wall + 1_000)
        #expect(report.replica == Self.jana.replica.hex && report.pendingChanges == 5 && report.refusedChanges == 0)
        // 35 writes (the 30 contacts that came back after the push were its own: no rows).
        #expect(tree == "audit" ? report.auditRows < 35 && report.readingStopped : report.auditRows == 35)
        #expect(report.readingStopped == (tree == "audit"))
        #expect(FileManager.default.fileExists(atPath: report.damagedFile), "the damaged file was not kept")

        // The rebuilt replica: same identity, its unpushed work visible and waiting.
        let jana = try LocalStore.open(in: directory.sub("jana"))
        #expect(jana.identity == Self.jana)
        #expect(try jana.outboxCount() == 5)
        #expect(try jana.reader.contacts().map(\.name).sorted() == (0..<5).map { "Offline \($0)" })
        #expect(jana.session.pullCursor == 0)
        // One sync pushes it and pulls the rest; the server holds each contact once.
        let synced = try await SyncEngine(store: jana, transport: transport, wall: { Self.wall + 2_000 }).sync()
        #expect(synced.pushedChanges == 5)
        #expect(try jana.reader.contacts().count == 35)
        #expect(jana.state == transport.ledger.state)
        #expect(transport.ledger.state.contacts.count == 35)
        // New work gets sequence numbers the server has not seen: it is accepted, not skipped.
        try Self.add(jana, ["After the repair"])
        _ = try await SyncEngine(store: jana, transport: transport, wall: { Self.wall + 3_000 }).sync()
        #expect(transport.ledger.state.contacts.count == 36)
        #expect(try jana.outboxCount() == 0)
        if tree != "audit" {
            #expect(try jana.reader.history(of: jana.state.contacts.sortedKeys[0])?.changes.isEmpty == false)
        }
    }

    @Test("a replica that is not damaged is not repaired, and nothing changes")
    func healthyReplicaRefused() throws {
        let directory = TempDirectory()
        do {
            let jana = try LocalStore.create(in: directory.path, identity: Self.jana)
            try Self.add(jana, ["Jana"])
        }
        let path = directory.sub(LocalStore.fileName)
        try DatabaseQueue(path: path).writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE)")
        }
        let before = try Data(contentsOf: URL(fileURLWithPath: path))
        do {
            _ = try StoreRepair.repair(in: directory.path, wall: Self.wall)
            Issue.record("repaired a healthy replica")
        } catch {
            #expect(error.message.contains("not damaged"), "\(error)")
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == before)
        #expect(try LocalStore.open(in: directory.path).reader.contacts().count == 1)
    }

    /// `repair` stopped between moving the damaged file aside and moving the new one in (killed,
    /// or a power cut that kept one rename and not the other): the directory holds no replica
    /// file, only the complete one in `repair.tmp`. The state is rebuilt after a real repair by
    /// moving the new file back, with a WAL of another database where the damaged file's was
    /// (a power cut can undo the move of the WAL but keep the file's): opening must finish the
    /// repair, not say there is no replica, and must not let that WAL near the new file.
    @Test("a repair stopped before the new file was in place is finished by the next open or init")
    func interruptedRepairFinished() throws {
        let directory = TempDirectory()
        let data = directory.sub("jana")
        let path = data + "/" + LocalStore.fileName
        do {
            let jana = try LocalStore.create(in: data, identity: Self.jana)
            try Self.add(jana, (0..<5).map { "Offline \($0)" })
        }
        try Self.damage(path, tree: "contacts_listing")
        _ = try StoreRepair.repair(in: data, wall: Self.wall + 1_000)

        // A WAL with frames of another database, taken while that database is open.
        let other = try DatabaseQueue(path: directory.sub("other.sqlite"))
        try other.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA journal_mode = WAL")
            try db.execute(sql: "CREATE TABLE store_meta (key TEXT PRIMARY KEY, value TEXT)")
            try db.execute(sql: "INSERT INTO store_meta VALUES ('replica_id', 'not jana')")
        }
        let foreignWAL = try Data(contentsOf: URL(fileURLWithPath: directory.sub("other.sqlite-wal")))
        #expect(foreignWAL.count > 32, "the other database's WAL holds no frames")

        func interrupt() throws {
            let building = data + "/repair.tmp"
            try FileManager.default.createDirectory(atPath: building, withIntermediateDirectories: true)
            try FileManager.default.moveItem(atPath: path, toPath: building + "/" + LocalStore.fileName)
            try foreignWAL.write(to: URL(fileURLWithPath: path + "-wal"))
        }
        try interrupt()
        do {
            let jana = try LocalStore.open(in: data)
            #expect(jana.identity == Self.jana)
            #expect(try jana.outboxCount() == 5)
            #expect(try jana.reader.contacts().map(\.name).sorted() == (0..<5).map { "Offline \($0)" })
            #expect(try jana.integrityCheck() == ["ok"])
            #expect(!FileManager.default.fileExists(atPath: data + "/repair.tmp"))
            #expect(
                FileManager.default.fileExists(atPath: path + ".damaged-interrupted-wal"), "the stray WAL was not kept")
        }

        // `init` in the same state finishes the repair and then finds the replica there.
        try FileManager.default.removeItem(atPath: path + ".damaged-interrupted-wal")
        try interrupt()
        #expect(throws: StoreError.self) { try LocalStore.create(in: data, identity: Self.jana) }
        #expect(try LocalStore.open(in: data).outboxCount() == 5)
    }
}
