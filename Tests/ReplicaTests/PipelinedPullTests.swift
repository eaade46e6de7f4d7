import CRDT
import CRDTTestSupport
import Domain
import DomainTestSupport
import Foundation
import Replica
import Testing

/// The sync engine prepares the next pulled batch (decodes it, merges it with what the store
/// holds over the batch being written, encodes it) while it writes the current one. These
/// tests check the result is exactly what pulling one batch at a time gives, in memory and on
/// disk.
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

    @Test("pulls prepared while the previous batch is written end exactly as pulls one at a time (seeded)")
    func pipelinedEqualsSerial() async throws {
        for seed in FuzzSettings.seeds(count: 3, longCount: 30, base: 0x7069_7065) {
            print("pipelined pulls: seed \(seed) (replay with KRALIKI_SEED=\(seed))")
            var random = SeededRandom(seed: seed)
            let directory = TempDirectory()
            func replica(_ name: String, _ id: UInt64) throws -> LocalStore {
                try LocalStore.create(
                    in: directory.sub(name),
                    identity: ReplicaIdentity(replica: ReplicaID(id), user: name, tenant: "acme"))
            }
            // The writer creates contacts and edits recent ones, so an entity's fields sit at
            // nearby sequences of the log, across the boundaries of 7-change batches.
            let writer = try replica("writer", 1)
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

            // One replica pulls while the ledger is being edited, the next batch prepared while
            // the previous one is written; the other gets exactly the same answers, one batch at
            // a time, so even their audit trails must match.
            let pipelined = try replica("pipelined", 2)
            let serial = try replica("serial", 3)
            let report = try await SyncEngine(store: pipelined, transport: transport, wall: { Self.wall }).sync()
            #expect(report.pullBatches > 20, "seed \(seed): \(report.pullBatches) batches prove little")
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
            // On disk: the reopened stores hold the same state, query rows and trail.
            let reopened = try LocalStore.open(in: directory.sub("pipelined"))
            let reopenedSerial = try LocalStore.open(in: directory.sub("serial"))
            #expect(reopened.state == server, "seed \(seed): the pipelined replica's file differs")
            #expect(reopened.session.pullCursor == reopenedSerial.session.pullCursor)
            #expect(try reopened.contacts() == reopenedSerial.contacts(), "seed \(seed): contact rows differ")
            for id in server.contacts.sortedKeys.prefix(20) {
                let trail = try #require(try reopened.history(of: id)).changes.map { [$0.user, $0.action] }
                #expect(
                    trail == (try #require(try reopenedSerial.history(of: id)).changes.map { [$0.user, $0.action] }),
                    "seed \(seed): the audit trail of \(id.text) differs")
                #expect(!trail.isEmpty)
                for phone in server.contacts[id]!.phones.elements {
                    #expect(try reopened.contacts(search: phone).map(\.id).contains(id.text))
                }
                for tag in server.contacts[id]!.tags.elements {
                    #expect(try reopened.contacts(tag: tag).map(\.id).contains(id.text))
                }
            }
        }
    }
}
