import CRDT
import Domain
import DomainTestSupport
import Foundation
import LocalStorage
import Replica
import ReplicaTestSupport
import StoreSupport
import SystemTestSupport
import Testing

/// The store's sync loop against an in-process server ledger, with cuts at every phase.
@Suite("Sync engine")
struct SyncEngineTests {
    static let wall: UInt64 = 1_764_000_000_000

    func replica(_ directory: TempDirectory, _ name: String, _ id: UInt64) throws -> LocalStore {
        try LocalStore.create(
            in: directory.sub(name), identity: ReplicaIdentity(replica: ReplicaID(id), user: name, tenant: "acme"))
    }

    func populate(_ store: LocalStore, count: Int, prefix: String) throws {
        for index in 0..<count {
            try store.write(wall: Self.wall + UInt64(index)) { s, c throws(ValidationError) in
                try s.createContact(
                    ContactDraft(name: "\(prefix) \(index)", phones: ["+42060\(String(1_000_000 + index))"]), c)
            }
        }
    }

    /// The audit trail is for "who changed what and when": a pulled change is recorded under its
    /// author's user and device and its own time, not under the replica that received it.
    @Test("a pulled change is in the receiver's history under its author, device and time")
    func pulledHistoryNamesTheAuthor() async throws {
        let directory = TempDirectory()
        let jana = try replica(directory, "jana", 1)
        let petr = try replica(directory, "petr", 2)
        let transport = InProcessTransport(ledger: TenantLedger(epoch: ServerEpoch(rawValue: 7)))
        try populate(jana, count: 1, prefix: "J")
        let id = jana.state.contacts.sortedKeys[0]
        _ = try await SyncEngine(store: jana, transport: transport, wall: { Self.wall }).sync()
        var edit = ContactEdit()
        edit.title = "CFO"
        _ = try await SyncEngine(store: petr, transport: transport, wall: { Self.wall }).sync()
        try petr.write(wall: Self.wall + 60_000) { s, c throws(ValidationError) in try s.editContact(id, edit, c) }
        _ = try await SyncEngine(store: petr, transport: transport, wall: { Self.wall }).sync()
        _ = try await SyncEngine(store: jana, transport: transport, wall: { Self.wall }).sync()

        // Jana's creation; Petr's own edit coming back from the server is not logged again.
        let received = try #require(try petr.reader.history(of: id)).changes
        #expect(received.map(\.action) == ["pull", "write"], "\(received)")
        #expect(received.first?.user == "jana" && received.first?.device == ReplicaID(1).hex, "\(received)")
        let own = try #require(try jana.reader.history(of: id)).changes
        #expect(own.map(\.action) == ["write", "pull"], "\(own)")
        #expect(own.last?.user == "petr" && own.last?.device == ReplicaID(2).hex, "\(own)")
        #expect(own.last?.at == TimeText.utc(Int64(Self.wall + 60_000)), "the edit's own time, not the pull's")
    }

    /// One pull can bring several people's edits of one record (the server sends the record's
    /// changed fields as they are now): each of them is in the receiver's trail, oldest first.
    @Test("one pull bringing two people's edits of a contact names both in the receiver's history")
    func pulledHistoryNamesEveryAuthor() async throws {
        let directory = TempDirectory()
        let jana = try replica(directory, "jana", 1)
        let petr = try replica(directory, "petr", 2)
        let marta = try replica(directory, "marta", 3)
        let transport = InProcessTransport(ledger: TenantLedger(epoch: ServerEpoch(rawValue: 7)))
        try populate(jana, count: 1, prefix: "J")
        let id = jana.state.contacts.sortedKeys[0]
        for store in [jana, petr, marta] {
            _ = try await SyncEngine(store: store, transport: transport, wall: { Self.wall }).sync()
        }
        var title = ContactEdit()
        title.title = "CFO"
        try petr.write(wall: Self.wall + 60_000) { s, c throws(ValidationError) in try s.editContact(id, title, c) }
        _ = try await SyncEngine(store: petr, transport: transport, wall: { Self.wall }).sync()
        var phone = ContactEdit()
        phone.addPhones = ["+420601999999"]
        try marta.write(wall: Self.wall + 120_000) { s, c throws(ValidationError) in try s.editContact(id, phone, c) }
        _ = try await SyncEngine(store: marta, transport: transport, wall: { Self.wall }).sync()

        let report = try await SyncEngine(store: jana, transport: transport, wall: { Self.wall }).sync()
        #expect(report.pullBatches == 1)
        let trail = try #require(try jana.reader.history(of: id)).changes
        #expect(trail.map(\.action) == ["write", "pull", "pull"], "\(trail)")
        #expect(trail.dropFirst().map(\.user) == ["petr", "marta"], "\(trail)")
        #expect(trail.dropFirst().map(\.device) == [ReplicaID(2).hex, ReplicaID(3).hex], "\(trail)")
        #expect(
            trail.dropFirst().map(\.at) == [
                TimeText.utc(Int64(Self.wall + 60_000)), TimeText.utc(Int64(Self.wall + 120_000)),
            ], "\(trail)")
        // A replica seeing the contact for the first time names its creator and both editors.
        let eva = try replica(directory, "eva", 4)
        _ = try await SyncEngine(store: eva, transport: transport, wall: { Self.wall }).sync()
        let first = try #require(try eva.reader.history(of: id)).changes
        #expect(first.map(\.user) == ["jana", "petr", "marta"], "\(first)")
        // Pulling nothing new adds nothing.
        _ = try await SyncEngine(store: jana, transport: transport, wall: { Self.wall }).sync()
        #expect(try jana.reader.history(of: id)?.changes.count == 3)
    }

    /// `history` lists who wrote every value an entity holds, decisions included: once
    /// it read a hand-written list of fields that left out a note's author and a contact's "not a
    /// duplicate of" (an admin's decision, pulled from another replica here).
    @Test("history names the writer of every field: a note's author, a pulled not-a-duplicate decision")
    func historyListsEveryField() async throws {
        let directory = TempDirectory()
        let jana = try replica(directory, "jana", 1)
        let petr = try replica(directory, "petr", 2)
        let transport = InProcessTransport(ledger: TenantLedger(epoch: ServerEpoch(rawValue: 7)))
        try jana.write(wall: Self.wall) { s, c throws(ValidationError) in
            try s.createContact(ContactDraft(name: "Jana N.", phones: ["601 234 567"]), c)
        }
        // The same person entered on two replicas that had not seen each other's: a probable duplicate.
        try petr.write(wall: Self.wall + 1) { s, c throws(ValidationError) in
            try s.createContact(ContactDraft(name: "Jana Nováková", phones: ["+420 601 234 567"]), c)
        }
        try jana.write(wall: Self.wall + 2) { s, c throws(ValidationError) in
            try s.addNote(NoteDraft(contact: s.contacts.sortedKeys[0], text: "Asked for a quote"), c)
        }
        let note = jana.state.notes.sortedKeys[0]
        _ = try await SyncEngine(store: jana, transport: transport, wall: { Self.wall }).sync()
        _ = try await SyncEngine(store: petr, transport: transport, wall: { Self.wall }).sync()
        let ids = petr.state.contacts.sortedKeys
        let duplicate = try #require(petr.state.conflicts().first { $0.kind == .probableDuplicate })
        try petr.write(wall: Self.wall + 60_000) { s, c throws(ValidationError) in
            try s.resolve(duplicate.id, .notDuplicate, c)
        }
        _ = try await SyncEngine(store: petr, transport: transport, wall: { Self.wall }).sync()
        _ = try await SyncEngine(store: jana, transport: transport, wall: { Self.wall }).sync()

        let noteFields = try #require(try jana.reader.history(of: note)).fields
        let author = try #require(noteFields.first { $0.field == "author" }, "\(noteFields.map(\.field))")
        #expect(author.value == "jana" && author.user == "jana", "\(author)")
        for (index, id) in ids.enumerated() {
            let fields = try #require(try jana.reader.history(of: id)).fields
            let decision = try #require(
                fields.first { $0.field == "not-duplicate-of" }, "\(fields.map(\.field))")
            #expect(decision.value == "+ " + ids[1 - index].text, "\(decision)")
            #expect(decision.user == "petr" && decision.device == ReplicaID(2).hex, "\(decision)")
            #expect(decision.at == TimeText.utc(Int64(Self.wall + 60_000)), "\(decision)")
            // Every live value of every field, nothing else.
            #expect(fields.count == jana.state.contacts[id]!.liveFieldEvents.count)
        }
    }

    @Test("two stores converge through the server; pushes and pulls are batched")
    func converge() async throws {
        let directory = TempDirectory()
        let jana = try replica(directory, "jana", 1)
        let petr = try replica(directory, "petr", 2)
        try populate(jana, count: 450, prefix: "J")
        try populate(petr, count: 30, prefix: "P")
        let transport = InProcessTransport(ledger: TenantLedger(epoch: ServerEpoch(rawValue: 7)))
        let first = try await SyncEngine(store: jana, transport: transport, wall: { Self.wall }).sync()
        #expect(first.pushedChanges == 450)
        #expect(first.pushBatches == 3)  // 200 per batch
        _ = try await SyncEngine(store: petr, transport: transport, wall: { Self.wall }).sync()
        _ = try await SyncEngine(store: jana, transport: transport, wall: { Self.wall }).sync()
        #expect(jana.state == petr.state, "states differ")
        #expect(jana.state == transport.ledger.state, "states differ")
        #expect(try jana.outboxCount() == 0 && petr.outboxCount() == 0)
        // A fresh replica pulls everything in bounded batches and can query it.
        let eva = try replica(directory, "eva", 3)
        let report = try await SyncEngine(store: eva, transport: transport, wall: { Self.wall }).sync()
        #expect(report.pullBatches == 1 + 480 / 500)
        #expect(try eva.reader.contacts().count == 480)
        // And it survives a restart with its cursor.
        let reopened = try LocalStore.open(in: directory.sub("eva"))
        #expect(reopened.session.pullCursor == transport.ledger.sequence)
        #expect(reopened.state == eva.state, "states differ")
    }

    @Test(
        "a cut at any phase loses nothing and duplicates nothing; the next attempt resumes",
        arguments: [InProcessTransport.Fault.beforeRequest, .afterServerCommit, .midResponse], [0, 1, 2])
    func cuts(fault: InProcessTransport.Fault, exchange: Int) async throws {
        let directory = TempDirectory()
        let jana = try replica(directory, "jana", 1)
        let petr = try replica(directory, "petr", 2)
        try populate(jana, count: 250, prefix: "J")
        try populate(petr, count: 10, prefix: "P")
        let transport = InProcessTransport(ledger: TenantLedger(epoch: ServerEpoch(rawValue: 7)))
        _ = try await SyncEngine(store: petr, transport: transport, wall: { Self.wall }).sync()
        // Jana's sync is three exchanges: a push of 200 changes, a push of 50, a pull. Cut one.
        transport.faults = Array(repeating: nil, count: exchange) + [fault]
        await #expect(throws: (any Error).self) {
            try await SyncEngine(store: jana, transport: transport, wall: { Self.wall }).sync()
        }
        #expect(try jana.integrityCheck() == ["ok"])
        #expect(try LocalStore.open(in: directory.sub("jana")).state == jana.state, "memory ran ahead of the file")
        _ = try await SyncEngine(store: jana, transport: transport, wall: { Self.wall }).sync()
        _ = try await SyncEngine(store: petr, transport: transport, wall: { Self.wall }).sync()
        #expect(jana.state == transport.ledger.state, "jana differs from the server")
        #expect(petr.state == transport.ledger.state, "petr differs from the server")
        #expect(transport.ledger.state.contacts.count == 260, "lost or duplicated contacts")
        #expect(try jana.outboxCount() == 0)
        // Re-sent changes changed nothing on the server: each contact got one sequence number.
        #expect(transport.ledger.sequence == 260)
    }

    @Test("after a restore (new epoch) the replica pushes what the server lacks and ends identical")
    func epochChange() async throws {
        let directory = TempDirectory()
        let jana = try replica(directory, "jana", 1)
        try populate(jana, count: 20, prefix: "J")
        let transport = InProcessTransport(ledger: TenantLedger(epoch: ServerEpoch(rawValue: 7)))
        _ = try await SyncEngine(store: jana, transport: transport, wall: { Self.wall }).sync()
        let backup = transport.ledger
        try populate(jana, count: 5, prefix: "Later")
        let doomed = jana.state.contacts.sortedKeys[0]
        try jana.write(wall: Self.wall + 100) { s, c throws(ValidationError) in try s.delete(.contact, doomed, c) }
        _ = try await SyncEngine(store: jana, transport: transport, wall: { Self.wall + 200 }).sync()
        transport.ledger = backup
        transport.ledger.startNewEpoch(ServerEpoch(rawValue: 8))
        let report = try await SyncEngine(store: jana, transport: transport, wall: { Self.wall + 300 }).sync()
        #expect(report.epochChanged)
        #expect(transport.ledger.state == jana.state, "states differ")
        #expect(transport.ledger.state.contact(doomed)?.isActive == false)
        #expect(jana.session.epoch == ServerEpoch(rawValue: 8))
    }

    @Test("a change the server refuses stays in the outbox, marked with the reason")
    func rejectedChange() async throws {
        let directory = TempDirectory()
        let jana = try replica(directory, "jana", 1)
        // Jana's clock is a day fast, and she has never synced.
        try jana.write(wall: Self.wall + 86_400_000) { s, c throws(ValidationError) in
            try s.createContact(ContactDraft(name: "From the future"), c)
        }
        let transport = InProcessTransport(ledger: TenantLedger(epoch: ServerEpoch(rawValue: 7)))
        let report = try await SyncEngine(store: jana, transport: transport, wall: { Self.wall + 86_400_000 }).sync()
        #expect(report.rejectedChanges == 1)
        #expect(try jana.outboxCount() == 0)
        let rejected = try jana.rejectedChanges()
        #expect(rejected.map(\.code) == ["clock-drift-exceeded"])
        #expect(transport.ledger.state.contacts.count == 0)
        #expect(jana.session.clockOffset < -86_000_000, "the offset hint says the clock is a day fast")
    }
}

@Suite("Retries")
struct RetryTests {
    @Test("backoff grows exponentially with full jitter, capped")
    func backoff() {
        let policy = RetryPolicy(initialDelay: .milliseconds(100), maximumDelay: .seconds(5))
        var rng = SystemRandomNumberGenerator()
        for attempt in 1...12 {
            let ceiling = min(100 * (1 << (attempt - 1)), 5_000)
            for _ in 0..<50 {
                let delay = policy.delay(after: attempt, using: &rng)
                #expect(delay >= .zero && delay <= .milliseconds(ceiling))
            }
        }
        let delays = (0..<200).map { _ in policy.delay(after: 8, using: &rng) }
        #expect(Set(delays).count > 50, "jitter should spread the retries")
    }

    @Test("failures that heal are retried until the sync completes; nothing is lost")
    func retriesHealingFailures() async throws {
        let directory = TempDirectory()
        let store = try LocalStore.create(
            in: directory.path, identity: ReplicaIdentity(replica: ReplicaID(1), user: "jana", tenant: "acme"))
        for index in 0..<5 {
            try store.write(wall: SyncEngineTests.wall + UInt64(index)) { s, c throws(ValidationError) in
                try s.createContact(ContactDraft(name: "C\(index)"), c)
            }
        }
        let transport = InProcessTransport(ledger: TenantLedger(epoch: ServerEpoch(rawValue: 7)))
        transport.faults = [.beforeRequest, .afterServerCommit, .midResponse, nil, .beforeRequest]
        var slept = [Duration]()
        let report = try await SyncEngine(store: store, transport: transport, wall: { SyncEngineTests.wall })
            .syncRetrying(policy: RetryPolicy(initialDelay: .milliseconds(10)), sleep: { slept.append($0) })
        #expect(slept.count == 4)
        #expect(report.pullBatches == 1)
        #expect(try store.outboxCount() == 0)
        #expect(transport.ledger.state.contacts.count == 5)
    }

    @Test(
        "failures that cannot heal stop at once with what to do",
        arguments: [
            SyncFailure(.revokedDevice, "this device was revoked; ask an admin for a new enrolment code"),
            SyncFailure(.incompatibleVersion, "the server speaks another protocol version; upgrade replica-cli"),
        ])
    func stopsOnPermanentFailure(failure: SyncFailure) async throws {
        struct Failing: SyncTransport {
            let failure: SyncFailure
            func push(_ batch: [UInt8]) async throws -> [UInt8] { throw failure }
            func pull(_ request: [UInt8]) async throws -> [UInt8] { throw failure }
        }
        let directory = TempDirectory()
        let store = try LocalStore.create(
            in: directory.path, identity: ReplicaIdentity(replica: ReplicaID(1), user: "jana", tenant: "acme"))
        var slept = 0
        do {
            _ = try await SyncEngine(store: store, transport: Failing(failure: failure)).syncRetrying(sleep: { _ in
                slept += 1
            })
            Issue.record("a permanent failure was swallowed")
        } catch let error as SyncFailure {
            #expect(error.code == failure.code)
        }
        #expect(slept == 0)
    }
}

@Suite("Clock offset")
struct ClockOffsetTests {
    @Test("the server's time hint corrects new stamps; stamps never go backwards, even when corrected back")
    func adoptsOffset() async throws {
        let directory = TempDirectory()
        let store = try LocalStore.create(
            in: directory.path, identity: ReplicaIdentity(replica: ReplicaID(1), user: "jana", tenant: "acme"))
        let wall = SyncEngineTests.wall
        let before = try store.write(wall: wall) { s, c throws(ValidationError) in
            try s.createContact(ContactDraft(name: "A"), c)
        }
        // This laptop's clock is an hour slow.
        let transport = InProcessTransport(ledger: TenantLedger(epoch: ServerEpoch(rawValue: 7)))
        transport.wall = wall + 3_600_000
        _ = try await SyncEngine(store: store, transport: transport, wall: { wall }).sync()
        #expect(store.session.clockOffset == 3_600_000)
        let after = try store.write(wall: wall + 10) { s, c throws(ValidationError) in
            try s.createContact(ContactDraft(name: "B"), c)
        }
        #expect(after.contacts.sortedKeys[0].time >> 16 == wall + 3_600_010)
        // Now the server says the clock is an hour fast: stamps slow down, never go back.
        transport.wall = wall - 3_600_000
        _ = try await SyncEngine(store: store, transport: transport, wall: { wall + 20 }).sync()
        let third = try store.write(wall: wall + 30) { s, c throws(ValidationError) in
            try s.createContact(ContactDraft(name: "C"), c)
        }
        #expect(third.contacts.sortedKeys[0] > after.contacts.sortedKeys[0])
        #expect(after.contacts.sortedKeys[0] > before.contacts.sortedKeys[0])
        // And it persists: a restart keeps the offset and the clock.
        let reopened = try LocalStore.open(in: directory.path)
        #expect(reopened.session.clockOffset == store.session.clockOffset)
        #expect(reopened.clock.last == store.clock.last)
    }
}
