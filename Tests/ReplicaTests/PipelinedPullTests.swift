import CRDT
import CRDTTestSupport
import Domain
import DomainTestSupport
import Foundation
import LocalStorage
import Replica
import ReplicaTestSupport
import StoreSupport
import SystemTestSupport
import Testing

/// The sync engine prepares the next pulled batch (decodes it, merges it with what the store
/// holds over the batch being written, encodes it) while it writes the current one, and joins
/// the batches that arrive meanwhile into one transaction. These tests check the result is
/// exactly what pulling one batch at a time gives, in memory and on disk.
@Suite("Pipelined pulls")
struct PipelinedPullTests {
    static let wall: UInt64 = 1_764_000_000_000

    /// A ledger usable from two tasks at once (a `ConcurrentSyncTransport`, as the HTTP/2 client
    /// is). Before each answer another device edits the ledger, so the log keeps growing while
    /// replicas pull, and an entity's changes land in consecutive batches.
    final class EditedLedger: ConcurrentSyncTransport, @unchecked Sendable {
        private let lock = NSLock()
        private var ledger: TenantLedger
        private var random: SeededRandom
        private var clock = HybridLogicalClock(replica: ReplicaID(99))
        private var editsLeft: Int

        init(seed: UInt64, edits: Int, maxPullChanges: Int) {
            ledger = TenantLedger(epoch: ServerEpoch(rawValue: 7))
            ledger.maxPullChanges = maxPullChanges
            random = SeededRandom(seed: seed)
            editsLeft = edits
        }

        var state: TenantState { lock.withLock { ledger.state } }

        func push(_ batch: [UInt8]) async throws -> [UInt8] {
            let batch = try PushBatch(blob: batch)
            return lock.withLock { ledger.receive(batch, wall: PipelinedPullTests.wall).encodedBlob() }
        }

        func pull(_ request: [UInt8]) async throws -> [UInt8] {
            let request = try PullRequest(blob: request)
            return lock.withLock {
                editsLeft -= 1
                if editsLeft >= 0 { edit() }
                let answer = ledger.respond(to: request, wall: PipelinedPullTests.wall).encodedBlob()
                answers[request.cursor, default: []].append(answer)
                return answer
            }
        }

        /// Every answer given, by the cursor asked from, in order.
        private var answers = [UInt64: [[UInt8]]]()

        /// Forgets the answers given so far (the writer's).
        func forgetAnswers() { lock.withLock { answers = [:] } }

        /// A transport that answers exactly what this one answered, request by request.
        func replay() -> Replay { lock.withLock { Replay(answers) } }

        final class Replay: SyncTransport {
            var answers: [UInt64: [[UInt8]]]
            init(_ answers: [UInt64: [[UInt8]]]) { self.answers = answers }
            struct NotAnswered: Error {}
            func push(_ batch: [UInt8]) async throws -> [UInt8] { throw NotAnswered() }
            func pull(_ request: [UInt8]) async throws -> [UInt8] {
                let cursor = try PullRequest(blob: request).cursor
                guard let next = answers[cursor]?.first else { throw NotAnswered() }
                answers[cursor]!.removeFirst()
                return next
            }
        }

        /// One edit of a random contact by the other device: a field, a phone, a tag.
        private func edit() {
            var state = ledger.state
            let ids = state.contacts.sortedKeys
            guard !ids.isEmpty else { return }
            let id = random.pick(ids)
            var edit = ContactEdit()
            switch random.int(0...3) {
            case 0: edit.name = "Edited \(random.int(0...999_999))"
            case 1: edit.company = "Company \(random.int(0...99))"
            case 2: edit.addPhones = ["+42077\(1_000_000 + random.int(0...999_999))"]
            default: edit.addTags = ["tag\(random.int(0...9))"]
            }
            let context = WriteContext(
                author: Author(user: "editor", device: ReplicaID(99)), stamp: clock.now(wall: PipelinedPullTests.wall))
            if let delta = try? state.editContact(id, edit, context) { _ = ledger.apply(delta) }
        }
    }

    /// A writer's 150 creations and edits on a ledger whose pulls answer 7 changes, so an
    /// entity's fields sit at nearby sequences of the log, across the boundaries of batches.
    func populatedLedger(seed: UInt64, in directory: TempDirectory) async throws -> EditedLedger {
        var random = SeededRandom(seed: seed)
        let writer = try replica("writer", 1, in: directory)
        var created = [EntityID]()
        for index in 0..<150 {
            if created.isEmpty || random.chance(0.5) {
                try writer.write(wall: Self.wall + UInt64(index)) { s, c throws(ValidationError) in
                    let delta = try s.createContact(ContactDraft(name: "Contact \(index)"), c)
                    created.append(delta.contacts.sortedKeys[0])
                    return delta
                }
            } else {
                let id = created[max(0, created.count - 1 - random.int(0...3))]
                var edit = ContactEdit()
                if random.chance(0.5) { edit.title = "Title \(index)" } else { edit.addTags = ["t\(index % 5)"] }
                try writer.write(wall: Self.wall + UInt64(index)) { s, c throws(ValidationError) in
                    try s.editContact(id, edit, c)
                }
            }
        }
        let transport = EditedLedger(seed: seed, edits: 60, maxPullChanges: 7)
        _ = try await SyncEngine(store: writer, transport: transport, wall: { Self.wall }).sync()
        transport.forgetAnswers()
        return transport
    }

    func replica(_ name: String, _ id: UInt64, in directory: TempDirectory) throws -> LocalStore {
        try LocalStore.create(
            in: directory.sub(name), identity: ReplicaIdentity(replica: ReplicaID(id), user: name, tenant: "acme"))
    }

    /// Both replicas' files, reopened, hold the server's state, the same cursor, query rows and
    /// audit trail, and find each contact by its phones and tags.
    func expectSameFiles(
        _ name: String, _ other: String, in directory: TempDirectory, server: TenantState, seed: UInt64
    ) throws {
        let reopened = try LocalStore.open(in: directory.sub(name))
        let reopenedOther = try LocalStore.open(in: directory.sub(other))
        #expect(reopened.state == server, "seed \(seed): \(name)'s file differs from the server")
        #expect(reopenedOther.state == server, "seed \(seed): \(other)'s file differs from the server")
        #expect(reopened.session.pullCursor == reopenedOther.session.pullCursor)
        #expect(try reopened.reader.contacts() == reopenedOther.reader.contacts(), "seed \(seed): contact rows differ")
        for id in server.contacts.sortedKeys.prefix(20) {
            let trail = try #require(try reopened.reader.history(of: id)).changes.map { [$0.user, $0.action] }
            #expect(
                trail == (try #require(try reopenedOther.reader.history(of: id)).changes.map { [$0.user, $0.action] }),
                "seed \(seed): the audit trail of \(id.text) differs")
            #expect(!trail.isEmpty)
            for phone in server.contacts[id]!.phones.elements {
                #expect(try reopened.reader.contacts(search: phone).map(\.id).contains(id.text))
            }
            for tag in server.contacts[id]!.tags.elements {
                #expect(try reopened.reader.contacts(tag: tag).map(\.id).contains(id.text))
            }
        }
    }

    @Test("pulls prepared while the previous batch is written end exactly as pulls one at a time (seeded)")
    func pipelinedEqualsSerial() async throws {
        for seed in FuzzSettings.seeds(count: 3, longCount: 30, base: 0x7069_7065) {
            print("pipelined pulls: seed \(seed) (replay with KRALIKI_SEED=\(seed))")
            let directory = TempDirectory()
            let transport = try await populatedLedger(seed: seed, in: directory)

            // One replica pulls while the ledger is being edited, the next batches prepared (and
            // joined) while the previous ones are written; the other gets exactly the same
            // answers, one batch at a time, so even their audit trails must match.
            let pipelined = try replica("pipelined", 2, in: directory)
            let serial = try replica("serial", 3, in: directory)
            let report = try await SyncEngine(store: pipelined, transport: transport, wall: { Self.wall }).sync()
            #expect(report.pullBatches > 20, "seed \(seed): \(report.pullBatches) batches prove little")
            print(
                "pipelined pulls: seed \(seed): \(report.pullBatches) batches, \(report.pullTransactions) transactions")
            // The edits stop after 60 answers; it catches up with the last of them.
            _ = try await SyncEngine(store: pipelined, transport: transport, wall: { Self.wall }).sync()
            let replay = transport.replay()
            var oneAtATime = SyncEngine(store: serial, transport: replay, wall: { Self.wall })
            oneAtATime.pipelinesPulls = false
            _ = try await oneAtATime.sync()
            _ = try await oneAtATime.sync()

            let server = transport.state
            #expect(pipelined.state == server, "seed \(seed): the pipelined replica differs from the server")
            #expect(serial.state == server, "seed \(seed): the one-at-a-time replica differs from the server")
            try expectSameFiles("pipelined", "serial", in: directory, server: server, seed: seed)
        }
    }

    /// What the engine does when batches arrive while it writes, step by step and without
    /// threads: batch 1 prepared; batches 2 to 4 each prepared against the ones before it (batch 1
    /// not yet in memory) and joined into one step; batch 1 written and taken in, then the joined
    /// step. The ledger is edited before every answer, so an entity comes again in a later batch
    /// of the same step. The result must be what writing the same answers one by one gives.
    @Test("batches joined into one transaction write exactly what one transaction per batch writes (seeded)")
    func joinedBatchesEqualOneByOne() async throws {
        for seed in FuzzSettings.seeds(count: 3, longCount: 30, base: 0x6A6F_696E) {
            print("joined batches: seed \(seed) (replay with KRALIKI_SEED=\(seed))")
            let directory = TempDirectory()
            let transport = try await populatedLedger(seed: seed, in: directory)
            let joined = try replica("joined", 2, in: directory)
            func pull(after session: ReplicaSyncSession, base: CommitBase) async throws -> PreparedCommit {
                var session = session
                let request = session.nextPull()
                let response = try PullResponse(blob: try await transport.pull(request.encodedBlob()))
                let actions = session.receive(response, for: request, sentAt: Self.wall, receivedAt: Self.wall)
                return try base.prepare(session: session, actions: actions, wall: Self.wall)
            }
            var transactions = 0
            var batches = 0
            var more = true
            while more {
                let first = try await pull(after: joined.session, base: joined.commitBase())
                batches += 1
                var step: PreparedCommit?
                while (step ?? first).actions.contains(.pullAgain), batches % 4 != 0 {
                    let base = joined.commitBase(after: first)
                    let next = try await pull(
                        after: (step ?? first).session, base: step.map { base.after($0) } ?? base)
                    batches += 1
                    if step == nil { step = next } else { step!.append(next) }
                }
                try joined.write(first)
                joined.adopt(first)
                transactions += 1
                if let step {
                    try joined.write(step)
                    joined.adopt(step)
                    transactions += 1
                }
                more = (step ?? first).actions.contains(.pullAgain)
            }
            #expect(transactions < batches, "seed \(seed): nothing was joined")
            #expect(joined.state == transport.state, "seed \(seed): the joined replica differs from the server")

            let serial = try replica("serial", 3, in: directory)
            var oneAtATime = SyncEngine(store: serial, transport: transport.replay(), wall: { Self.wall })
            oneAtATime.pipelinesPulls = false
            let report = try await oneAtATime.sync()
            #expect(report.pullBatches == batches && report.pullTransactions == batches)
            try expectSameFiles("joined", "serial", in: directory, server: transport.state, seed: seed)
        }
    }

    /// A ledger whose pulls call `beforeAnswer` with their number (1, 2, …) first, which may
    /// throw (the network cut that pull).
    final class GatedLedger: ConcurrentSyncTransport, @unchecked Sendable {
        private let lock = NSLock()
        private var ledger: TenantLedger
        private var answered = 0
        private var answeredCursors = [UInt64]()
        /// The cursor each answer ended at, in order.
        var cursors: [UInt64] { lock.withLock { answeredCursors } }
        let beforeAnswer: @Sendable (Int) throws -> Void

        init(_ ledger: TenantLedger, beforeAnswer: @escaping @Sendable (Int) throws -> Void) {
            self.ledger = ledger
            self.beforeAnswer = beforeAnswer
        }

        func push(_ batch: [UInt8]) async throws -> [UInt8] { throw InProcessTransport.Cut() }

        func pull(_ request: [UInt8]) async throws -> [UInt8] {
            let number = lock.withLock {
                answered += 1
                return answered
            }
            try beforeAnswer(number)
            let request = try PullRequest(blob: request)
            return lock.withLock {
                let response = ledger.respond(to: request, wall: PipelinedPullTests.wall)
                answeredCursors.append(response.nextCursor)
                return response.encodedBlob()
            }
        }
    }

    /// The network goes from the 4th pull on, while batches may be being joined (the engine asks
    /// for the next ones as the previous are written): whatever arrived is durable — batches 1
    /// to 3, whether in two or three transactions — the sync throws, and the next sync resumes
    /// from there and ends where the server is.
    @Test("a network cut while batches are joined keeps every batch that arrived")
    func cutWhileJoiningKeepsWhatArrived() async throws {
        let directory = TempDirectory()
        let writer = try replica("writer", 1, in: directory)
        for index in 0..<40 {
            try writer.write(wall: Self.wall + UInt64(index)) { s, c throws(ValidationError) in
                try s.createContact(ContactDraft(name: "Contact \(index)", tags: ["t\(index % 3)"]), c)
            }
        }
        var ledger = TenantLedger(epoch: ServerEpoch(rawValue: 7))
        ledger.maxPullChanges = 5
        let source = InProcessTransport(ledger: ledger)
        _ = try await SyncEngine(store: writer, transport: source, wall: { Self.wall }).sync()

        let replica = try replica("petr", 2, in: directory)
        let transport = GatedLedger(source.ledger) { number in
            if number >= 4 { throw InProcessTransport.Cut() }  // the network is gone from the 4th pull on
        }
        await #expect(throws: InProcessTransport.Cut.self) {
            _ = try await SyncEngine(store: replica, transport: transport, wall: { Self.wall }).sync()
        }
        let cursors = transport.cursors
        try #require(cursors.count == 3, "\(cursors)")
        #expect(replica.session.pullCursor == cursors[2], "a batch that arrived was not kept")
        let reopened = try LocalStore.open(in: directory.sub("petr"))
        #expect(reopened.session.pullCursor == cursors[2])
        #expect(reopened.state.contacts.count == 15)

        let report = try await SyncEngine(store: reopened, transport: source, wall: { Self.wall }).sync()
        #expect(report.pulledChanges == 25 && report.pullBatches == 5)
        #expect(reopened.state == source.ledger.state)
        #expect(try reopened.reader.contacts().count == 40)
        #expect(try reopened.reader.contacts(tag: "t1").count == 13)
    }
}
