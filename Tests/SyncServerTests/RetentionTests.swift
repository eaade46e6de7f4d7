import CRDT
import Domain
import DomainTestSupport
import Foundation
import LocalStorage
import Replica
import ServerTestSupport
import StoreSupport
import SyncServer
import SystemTestSupport
import Testing

/// Tombstone and log collection, the retention period, and the stale-cursor re-bootstrap, on a
/// real server over HTTP/2 with real replicas (and on the store alone where the server's clock
/// must be set by the test).
@Suite("Retention and garbage collection")
struct RetentionTests {
    static let wall: UInt64 = 1_780_000_000_000
    static let day: UInt64 = 86_400_000

    static func create(_ replica: EnrolledReplica, _ name: String) throws -> EntityID {
        let change = try replica.store.write(wall: SyncEngine.systemWall()) { state, context throws(ValidationError) in
            try state.createContact(ContactDraft(name: name), context)
        }
        return change.contacts.sortedKeys[0]
    }

    static func rename(_ replica: EnrolledReplica, _ id: EntityID, _ name: String) throws {
        try replica.store.write(wall: SyncEngine.systemWall()) { state, context throws(ValidationError) in
            var edit = ContactEdit()
            edit.name = name
            return try state.editContact(id, edit, context)
        }
    }

    static func delete(_ replica: EnrolledReplica, _ id: EntityID) throws {
        try replica.store.write(wall: SyncEngine.systemWall()) { state, context throws(ValidationError) in
            try state.delete(.contact, id, context)
        }
    }

    /// A device writing on its own copy of the state, with its own clock (for store-level tests
    /// that set the server's clock themselves).
    struct Writer {
        let user: String
        let replica: ReplicaID
        var state = TenantState()
        var clock: HybridLogicalClock

        init(_ user: String, _ replica: UInt64) {
            self.user = user
            self.replica = ReplicaID(replica)
            clock = HybridLogicalClock(replica: ReplicaID(replica))
        }

        mutating func context(wall: UInt64 = RetentionTests.wall) -> WriteContext {
            WriteContext(author: Author(user: user, device: replica), stamp: clock.now(wall: wall))
        }

        /// `changes` as one push batch, local sequences from 1.
        func batch(_ changes: [TenantState]) -> PushBatch {
            PushBatch(
                replica: replica, epoch: nil,
                changes: changes.enumerated().map { PushChange(localSequence: UInt64($0 + 1), change: $1) })
        }
    }

    /// Active contacts by ID, with their names: what a user sees.
    static func visible(_ replica: EnrolledReplica) -> [EntityID: String] {
        replica.store.state.contacts.valueByKey.filter { $0.value.isActive }.mapValues { $0.name.value ?? "" }
    }

    /// Two collection runs further apart than the retention: the first one's checkpoint dates
    /// everything before it as old enough for the second.
    /// Returns what both did.
    static func collectTwice(_ server: RunningServer) async throws -> GarbageCollection {
        var total = try await server.runtime.collectGarbage()
        try await Task.sleep(for: .milliseconds(300))
        let second = try await server.runtime.collectGarbage()
        total.tombstones += second.tombstones
        total.logEntries += second.logEntries
        total.tombstonesWaiting = second.tombstonesWaiting
        return total
    }

    @Test("a deletion every device pulled is collected after the retention; a device away longer re-bootstraps")
    func collectAndRebootstrap() async throws {
        // 0.000002 days = 173 ms: the test waits longer than that between collection runs.
        let server = try await RunningServer.start { $0.retentionDays = 0.000_002 }
        let directory = TempDirectory("replicas")
        let jana = try await server.enrolReplica(in: directory.sub("jana"), user: "jana")
        let petr = try await server.enrolReplica(in: directory.sub("petr"), user: "petr")
        let away = try await server.enrolReplica(in: directory.sub("away"), user: "eva")

        let kept = try Self.create(jana, "Kept")
        let doomed = try Self.create(jana, "Doomed")
        for round in 0..<5 { try Self.rename(jana, kept, "Kept \(round)") }  // superseded log entries
        _ = try await jana.sync()
        _ = try await away.sync()  // holds both contacts, then goes offline
        _ = try await petr.sync()
        try Self.delete(petr, doomed)
        _ = try await petr.sync()
        _ = try await jana.sync()
        let before = try server.store.sequence(of: "acme")

        let collection = try await Self.collectTwice(server)
        #expect(collection.tombstones == 1, "\(collection)")
        #expect(collection.logEntries == 4, "\(collection)")  // renames 0–3; rename 4 holds the name now
        let (collected, through) = try server.store.collectedCount(of: "acme")
        #expect(collected == 1)
        #expect(through > 0 && through <= before)
        let serverState = try server.store.state(of: "acme")
        #expect(serverState.contacts[doomed] == nil, "the tombstone is still on the server")

        // A fresh replica gets everything but the collected tombstone, and nothing loops.
        let fresh = try await server.enrolReplica(in: directory.sub("fresh"), user: "jiri")
        _ = try await fresh.sync()
        #expect(Self.visible(fresh) == [kept: "Kept 4"])
        #expect(fresh.store.state.contacts[doomed] == nil)

        // The replica that was away edited both contacts offline. Its edit of the kept one goes
        // through; its edit of the collected one is refused with a reason (not resurrected);
        // its cursor is older than the collected deletion, so it re-bootstraps.
        try Self.rename(away, kept, "Kept, edited offline")
        try Self.rename(away, doomed, "Doomed, edited offline")
        let report = try await away.sync()
        #expect(report.rebootstrapped)
        #expect(report.rejectedChanges == 1)
        let refused = try away.store.rejectedChanges()
        #expect(refused.map(\.code) == ["entity-collected"])
        #expect(refused.first?.reason.contains("retention") == true)
        #expect(try away.store.outboxCount() == 0)
        #expect(Self.visible(away) == [kept: "Kept, edited offline"])
        #expect(try server.store.state(of: "acme").contacts[doomed] == nil, "a late edit brought a deleted record back")

        // Everyone converges on what users see; the integrity of the store holds.
        for replica in [jana, petr, fresh] { _ = try await replica.sync() }
        for replica in [jana, petr, fresh] {
            #expect(Self.visible(replica) == [kept: "Kept, edited offline"], "\(replica.directory)")
        }
        #expect(try server.store.integrityCheck() == ["ok"])
        for replica in [jana, petr, away, fresh] { await replica.close() }
        await server.stop()
    }

    @Test("no tombstone is collected while an active device has not pulled it; an inactive one does not hold it up")
    func waitsForActiveDevices() throws {
        // The store alone, with the server's clock set by the test (timing-free).
        let directory = TempDirectory("store")
        let store = try ServerDatabase.open(in: directory.path)
        func device(_ user: String) throws -> String {
            let code = try store.createEnrolmentCode(
                tenant: "acme", user: user, role: .agent, wall: Self.wall, actor: "test")
            return try store.enrol(code: code.code, wall: Self.wall).deviceId
        }
        let jana = try device("jana")
        let petr = try device("petr")
        let away = try device("eva")
        var writer = Writer("jana", 7)
        let created = try writer.state.createContact(ContactDraft(name: "Doomed"), writer.context())
        let id = created.contacts.sortedKeys[0]
        let deleted = try writer.state.delete(.contact, id, writer.context())
        _ = try store.receive(writer.batch([created, deleted]), tenant: "acme", wall: Self.wall)
        let head = try store.sequence(of: "acme")
        _ = try store.collectGarbage(retention: Self.day, wall: Self.wall + 1)  // the checkpoint

        // Two days later: Jana pulled everything, Petr is active (seen an hour ago) but pulled
        // only the creation, Eva has not been seen for longer than the retention.
        let later = Self.wall + 2 * Self.day
        try store.record(activity: [
            jana: DeviceActivity(lastSeenMs: later - 3_600_000, lastPullMs: later - 3_600_000, cursor: head),
            petr: DeviceActivity(lastSeenMs: later - 3_600_000, lastPullMs: later - 3_600_000, cursor: head - 1),
            away: DeviceActivity(lastSeenMs: Self.wall, lastPullMs: Self.wall, cursor: 0),
        ])
        let waiting = try store.collectGarbage(retention: Self.day, wall: later)
        #expect(waiting.tombstones == 0, "\(waiting)")
        #expect(try store.state(of: "acme").contacts[id] != nil)

        // Once Petr pulled it, it goes — Eva, away longer than the retention, does not hold it up.
        try store.record(activity: [petr: DeviceActivity(lastSeenMs: later, lastPullMs: later, cursor: head)])
        let collected = try store.collectGarbage(retention: Self.day, wall: later + 1)
        #expect(collected.tombstones == 1, "\(collected)")
        #expect(try store.state(of: "acme").contacts[id] == nil)
        #expect(try store.collectedCount(of: "acme").through == head)
    }

    @Test("age is measured by the server's clock: a deletion stamped a year in the past still waits the retention")
    func serverClockDecidesAge() throws {
        let directory = TempDirectory("store")
        let store = try ServerDatabase.open(in: directory.path)
        var eva = Writer("eva", 7)
        let yearAgo = Self.wall - 365 * Self.day
        let created = try eva.state.createContact(ContactDraft(name: "Old"), eva.context(wall: yearAgo))
        let id = created.contacts.sortedKeys[0]
        let deleted = try eva.state.delete(.contact, id, eva.context(wall: yearAgo))
        _ = try store.receive(eva.batch([created, deleted]), tenant: "acme", wall: Self.wall)

        // The deletion's stamp is a year old, but the server received it just now.
        let first = try store.collectGarbage(retention: Self.day, wall: Self.wall + 1)
        #expect(first.tombstones == 0)
        let early = try store.collectGarbage(retention: Self.day, wall: Self.wall + Self.day / 2)
        #expect(early.tombstones == 0)
        let late = try store.collectGarbage(retention: Self.day, wall: Self.wall + 2 * Self.day)
        #expect(late.tombstones == 1)

        // The same old state pushed again (a re-push after a restore) is ignored, not refused,
        // and does not re-create the record; a new edit of it is refused with a reason.
        let again = try store.receive(eva.batch([created]), tenant: "acme", wall: Self.wall + 2 * Self.day)
        #expect(again.rejected.isEmpty)
        #expect(try store.state(of: "acme").contacts[id] == nil)
        var jan = Writer("jan", 8)
        jan.state = eva.state
        let edit = try jan.state.restore(.contact, id, jan.context())
        let refused = try store.receive(jan.batch([edit]), tenant: "acme", wall: Self.wall + 2 * Self.day)
        #expect(refused.rejected.map(\.code) == ["entity-collected"])
        #expect(try store.state(of: "acme").contacts[id] == nil)

        // Deleting it again (a replica that had not heard) is ignored; a new note on it is
        // refused, so nothing points at a record that is gone.
        var iva = Writer("iva", 9)
        iva.state.merge(created)
        let note = try iva.state.addNote(NoteDraft(contact: id, text: "called"), iva.context())
        let redelete = try iva.state.delete(.contact, id, iva.context())
        let answer = try store.receive(iva.batch([note, redelete]), tenant: "acme", wall: Self.wall + 2 * Self.day)
        #expect(answer.rejected.map(\.localSequence) == [1])
        #expect(try store.state(of: "acme").notes.isBottom)
    }

    @Test("a contact a live note refers to keeps its tombstone (the orphaned note stays a visible conflict)")
    func referencedContactIsKept() throws {
        let directory = TempDirectory("store")
        let store = try ServerDatabase.open(in: directory.path)
        var eva = Writer("eva", 7)
        let created = try eva.state.createContact(ContactDraft(name: "Called"), eva.context())
        let contact = created.contacts.sortedKeys[0]
        let note = try eva.state.addNote(NoteDraft(contact: contact, text: "called, no answer"), eva.context())
        let deleted = try eva.state.delete(.contact, contact, eva.context())
        _ = try store.receive(eva.batch([created, note, deleted]), tenant: "acme", wall: Self.wall)
        _ = try store.collectGarbage(retention: Self.day, wall: Self.wall)
        let collection = try store.collectGarbage(retention: Self.day, wall: Self.wall + 2 * Self.day)
        #expect(collection.tombstones == 0)
        #expect(collection.tombstonesWaiting == 1)
        #expect(try store.state(of: "acme").contacts[contact] != nil)
        #expect(!(try store.state(of: "acme").conflicts().isEmpty))
    }

    @Test("a schema-2 server store (before retention) is migrated in place and keeps its ledgers")
    func migratesFromSchemaTwo() async throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().path
        let directory = TempDirectory("store")
        let file = directory.path + "/" + ServerDatabase.fileName
        var script = ""
        for name in ["0001_initial.sql", "0002_devices.sql"] {
            script += try String(contentsOfFile: root + "/schema/server/" + name, encoding: .utf8)
        }
        script += "PRAGMA user_version = 2;\nINSERT INTO tenant_ledger VALUES ('acme', '00000000000000aa', 42);\n"
        try script.write(toFile: directory.path + "/old.sql", atomically: true, encoding: .utf8)
        let made = try await ChildProcess.run("/usr/bin/sqlite3", [file, ".read \(directory.path)/old.sql"])
        #expect(made.status == 0, "\(made)")
        let store = try ServerDatabase.open(in: directory.path)
        #expect(try store.sequence(of: "acme") == 42)
        #expect(try store.epoch(of: "acme").description == "00000000000000aa")
        let collected = try store.collectedCount(of: "acme")
        #expect(collected.entities == 0 && collected.through == 0)
        #expect(try store.collectGarbage(retention: Self.day, wall: Self.wall).tenants == 1)
    }
}
