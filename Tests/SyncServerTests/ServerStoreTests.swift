import CRDT
import CRDTTestSupport
import Domain
import DomainTestSupport
import Foundation
import LocalStorage
import Replica
import ServerStoreConformance
import StoreSupport
import SyncServer
import SystemTestSupport
import Testing

/// The embedded SQLite store beyond the conformance suite: foreign writes, durability across a
/// reopen, replicas converging through it, its schema and fsync setting.
@Suite("Server store")
struct ServerStoreTests {
    static let wall: UInt64 = 1_764_000_000_000

    @Test("a change with one foreign write among its entities is refused whole: nothing stored, no sequence used")
    func foreignWriteRefusesWholeChange() throws {
        let directory = TempDirectory("server")
        let store = try ServerDatabase.open(in: directory.path)
        let jana = Author(user: "jana", device: ReplicaID(1))
        let petr = Author(user: "petr", device: ReplicaID(2))
        func create(_ name: String, by author: Author, wall: UInt64) throws -> TenantState {
            var state = TenantState()
            var clock = HybridLogicalClock(replica: author.device)
            return try state.createContact(
                ContactDraft(name: name),
                WriteContext(author: author, stamp: clock.now(wall: wall), settings: DomainSettings()))
        }
        // The tenant's epoch begins now: other devices' writes stamped later are never accepted.
        let start = UInt64(Date().timeIntervalSince1970 * 1000)
        _ = try store.epoch(of: "acme")
        // Jana's own new contact and, in the same change, one stamped by Petr's device. The
        // entities are applied in ID order, so Jana's (the earlier stamp) is written first.
        var mixed = try create("Jana's", by: jana, wall: start + 1_000)
        mixed.merge(try create("Petr's, forged", by: petr, wall: start + 2_000))
        let now = start + 3_000
        let push = TenantPush(
            batch: PushBatch(replica: jana.device, epoch: nil, changes: [PushChange(localSequence: 1, change: mixed)]),
            tenant: "acme", author: jana)
        let refused = try store.receive([push], wall: now)[0]
        #expect(refused.ack.rejected.map(\.code) == ["foreign-write"])
        #expect(try store.state(of: "acme").isBottom, "part of a refused change was stored")
        #expect(refused.sequence == 0)
        // The next change takes sequence 1: the refused one used none.
        let own = TenantPush(
            batch: PushBatch(
                replica: jana.device, epoch: nil,
                changes: [PushChange(localSequence: 2, change: try create("Jana's", by: jana, wall: start + 1_000))]),
            tenant: "acme", author: jana)
        let accepted = try store.receive([own], wall: now)[0]
        #expect(accepted.ack.rejected.isEmpty && accepted.sequence == 1)

        // A record of Jana's, every stamp inside her own, filed under an ID of Petr's device:
        // its creation claimed for Petr. The request thread's scan sees nothing foreign in it;
        // the ID is checked for every record new to the server.
        let janas = try create("Filed under Petr", by: jana, wall: start + 1_500)
        let borrowed = EntityID(time: janas.contacts.sortedKeys[0].time, replica: petr.device)
        let filed = TenantState(contacts: ORMap([borrowed: janas.contacts.valueByKey.values.first!]))
        #expect(!filed.mayHoldForeignWrites(by: jana))
        let borrowing = TenantPush(
            batch: PushBatch(replica: jana.device, epoch: nil, changes: [PushChange(localSequence: 3, change: filed)]),
            tenant: "acme", author: jana)
        let refusedID = try store.receive([borrowing], wall: now)[0]
        #expect(refusedID.ack.rejected.map(\.code) == ["foreign-write"])
        #expect(refusedID.ack.rejected.first?.reason.contains("field id") == true, "\(refusedID.ack.rejected)")
        #expect(try store.state(of: "acme").contacts[borrowed] == nil)
    }

    @Test("what was acknowledged survives closing and reopening")
    func durable() throws {
        let directory = TempDirectory("server")
        var reference = TenantLedger(epoch: ServerEpoch(rawValue: 1))
        var epoch: ServerEpoch
        do {
            let store = try ServerDatabase.open(in: directory.path)
            epoch = try store.epoch(of: "acme")
            for batch in ServerStoreConformance.batches(seed: 9) {
                _ = try store.receive(batch, tenant: "acme", wall: Self.wall + 100_000)
                _ = reference.receive(batch, wall: Self.wall + 100_000)
            }
        }
        let reopened = try ServerDatabase.open(in: directory.path)
        #expect(try reopened.epoch(of: "acme") == epoch)
        #expect(try reopened.sequence(of: "acme") == reference.sequence)
        let same = try reopened.state(of: "acme") == reference.state
        #expect(same, "the reopened store differs")
        #expect(try reopened.integrityCheck() == ["ok"])
    }

    @Test("two replica stores converge through the durable server")
    func replicasConverge() async throws {
        final class Transport: SyncTransport {
            let store: ServerDatabase
            init(store: ServerDatabase) { self.store = store }
            func push(_ batch: [UInt8]) async throws -> [UInt8] {
                try store.receive(PushBatch(blob: batch), tenant: "acme", wall: ServerStoreTests.wall).encodedBlob()
            }
            func pull(_ request: [UInt8]) async throws -> [UInt8] {
                try store.respond(to: PullRequest(blob: request), tenant: "acme", wall: ServerStoreTests.wall)
                    .encodedBlob()
            }
        }
        let directory = TempDirectory("server")
        let server = try ServerDatabase.open(in: directory.path + "/server")
        let transport = Transport(store: server)
        let jana = try LocalStore.create(
            in: directory.path + "/jana", identity: ReplicaIdentity(replica: ReplicaID(1), user: "jana", tenant: "acme")
        )
        let petr = try LocalStore.create(
            in: directory.path + "/petr", identity: ReplicaIdentity(replica: ReplicaID(2), user: "petr", tenant: "acme")
        )
        try jana.importContacts((0..<700).map { ContactDraft(name: "J\($0)") }, wall: Self.wall)
        try petr.importContacts((0..<30).map { ContactDraft(name: "P\($0)") }, wall: Self.wall)
        for store in [jana, petr, jana] {
            _ = try await SyncEngine(store: store, transport: transport, wall: { Self.wall }).sync()
        }
        let converged = jana.state == petr.state
        let onServer = try server.state(of: "acme") == jana.state
        #expect(converged && onServer, "replicas and server differ")
        #expect(try server.sequence(of: "acme") == 730)
    }
}

@Test("the embedded server migrations are exactly the files in schema/server/")
func serverSchemaMatchesFiles() throws {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    let folder = root.path + "/schema/server"
    let files = try FileManager.default.contentsOfDirectory(atPath: folder).filter { $0.hasSuffix(".sql") }.sorted()
    let embedded = try String(
        contentsOfFile: root.path + "/Sources/SyncServer/Store/SQLite/ServerSchema.swift", encoding: .utf8)
    #expect(
        files == [
            "0001_initial.sql", "0002_devices.sql", "0003_retention.sql", "0004_others_writes.sql",
            "0005_code_role_and_rejoin.sql",
        ])
    for file in files {
        let sql = try String(contentsOfFile: folder + "/" + file, encoding: .utf8)
        #expect(
            embedded.contains("\"\(file)\",\n        #\"\"\"\n\(sql)\"\"\"#"),
            "\(file) differs; run scripts/embed-schema.py")
    }
}

@Test("the server store fsyncs every commit (synchronous = FULL on the writer, not GRDB's WAL default)")
func serverStoreIsFull() throws {
    let directory = TempDirectory("durability")
    #expect(try ServerDatabase.open(in: directory.path).synchronousLevel() == 2)
    #expect(try ServerDatabase.open(in: directory.path).synchronousLevel() == 2, "after a reopen")
}
