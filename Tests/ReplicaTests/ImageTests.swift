import CRDT
import CRDTTestSupport
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

/// Bootstrap images on the replica side: taking one, and refusing one that does not fit
/// without changing anything. (Over HTTP/2 with the server's builder: SyncServerTests.)
@Suite("Bootstrap images (replica)")
struct ImageTests {
    static let wall: UInt64 = 1_764_000_000_000

    /// The in-process server, which also hands out an image file when it has one.
    final class ImageServingTransport: ImageSyncTransport {
        let base: InProcessTransport
        var image: String?
        private(set) var downloads = 0

        /// Answers the next pull from a cursor above 0 with `stale-cursor`, as a server that
        /// collected tombstones newer than it does.
        var refusesNextCursor = false

        init(_ base: InProcessTransport) { self.base = base }
        func push(_ batch: [UInt8]) async throws -> [UInt8] { try await base.push(batch) }
        func pull(_ request: [UInt8]) async throws -> [UInt8] {
            if refusesNextCursor, try PullRequest(blob: request).cursor > 0 {
                refusesNextCursor = false
                throw SyncFailure(.staleCursor, "your cursor is older than the server keeps deletions")
            }
            return try await base.pull(request)
        }
        func downloadImage(to path: String) async throws -> ImageDownload {
            downloads += 1
            guard let image else { return .unavailable }
            unlink(path)
            try FileManager.default.copyItem(atPath: image, toPath: path)
            return .downloaded(verified: false)
        }
    }

    static func identity(_ replica: UInt64, _ user: String, tenant: String = "acme") -> ReplicaIdentity {
        ReplicaIdentity(replica: ReplicaID(replica), user: user, tenant: tenant)
    }

    static func addContacts(_ store: LocalStore, _ count: Int, from first: Int = 0) throws {
        for index in first..<(first + count) {
            try store.write(wall: wall + UInt64(index)) { state, context throws(ValidationError) in
                try state.createContact(ContactDraft(name: "Contact \(index)", tags: ["t\(index % 3)"]), context)
            }
        }
    }

    /// An in-process server of `tenant` (epoch `epoch`) and a writer replica that pushed `count`
    /// contacts to it.
    static func serverWithWriter(
        _ name: String, in directory: TempDirectory, contacts count: Int, tenant: String = "acme", epoch: UInt64 = 7
    ) async throws -> (InProcessTransport, LocalStore) {
        let transport = InProcessTransport(ledger: TenantLedger(epoch: ServerEpoch(rawValue: epoch)))
        let writer = try LocalStore.create(in: directory.sub(name), identity: identity(0xC1, name, tenant: tenant))
        try addContacts(writer, count)
        _ = try await SyncEngine(store: writer, transport: transport, wall: { wall }).sync()
        return (transport, writer)
    }

    /// An image of what `transport`'s server holds now, written as the server's builder does.
    static func image(
        from transport: InProcessTransport, tenant: String = "acme", in directory: TempDirectory, name: String
    ) async throws -> String {
        let builder = try LocalStore.create(
            in: directory.sub("builder-\(name)"), identity: identity(0xB0, "(image builder)", tenant: tenant),
            options: StoreOptions(durability: .normal, auditsPulls: false))
        _ = try await SyncEngine(store: builder, transport: transport, wall: { wall }).sync()
        let path = directory.sub("\(name).sqlite")
        try builder.writeImage(to: path)
        return path
    }

    /// A replica away longer than the retention re-bootstraps; it takes the image too, keeping
    /// what only it holds: its refused changes, its sequence numbers, its audit trail.
    @Test("a re-bootstrapping replica takes the image and keeps its refused changes, sequence and trail")
    func rebootstrapTakesImage() async throws {
        let directory = TempDirectory("image-rebootstrap")
        let (transport, jana) = try await Self.serverWithWriter("jana", in: directory, contacts: 40)
        let serving = ImageServingTransport(transport)
        let petr = try LocalStore.create(in: directory.sub("petr"), identity: Self.identity(0xD1, "petr"))
        _ = try await SyncEngine(store: petr, transport: serving, wall: { Self.wall }).sync()
        // A change the server takes, then one it refused (marked as the engine marks a refusal:
        // an edit of a record the server collected would be).
        try Self.addContacts(petr, 1, from: 500)
        _ = try await SyncEngine(store: petr, transport: serving, wall: { Self.wall }).sync()
        try Self.addContacts(petr, 1, from: 501)
        try await DatabaseQueue(path: petr.path).write { db in
            try db.execute(
                sql: "UPDATE outbox SET rejected_code = 'entity-collected', rejected_reason = 'collected' "
                    + "WHERE rejected_code IS NULL")
        }
        let refused = try petr.rejectedChanges()
        #expect(refused.count == 1)
        #expect(try petr.outboxCount() == 0)
        let trail = try await DatabaseQueue(path: petr.path).read { db in
            try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM audit")!
        }
        // Meanwhile the others go on; the server's image has all of it.
        try Self.addContacts(jana, 20, from: 100)
        _ = try await SyncEngine(store: jana, transport: transport, wall: { Self.wall }).sync()
        serving.image = try await Self.image(from: transport, in: directory, name: "image")
        try Self.addContacts(jana, 5, from: 200)
        _ = try await SyncEngine(store: jana, transport: transport, wall: { Self.wall }).sync()

        serving.refusesNextCursor = true
        let report = try await SyncEngine(store: petr, transport: serving, wall: { Self.wall }).sync()
        #expect(report.rebootstrapped)
        #expect(report.imageEntities == 61, "\(report)")  // 40 + petr's 1 + 20
        #expect(report.pulledChanges == 5)
        #expect(petr.state == transport.ledger.state)
        #expect(try petr.rejectedChanges() == refused, "the refused change was not kept")
        let kept = try await DatabaseQueue(path: petr.path).read { db in
            try Int.fetchOne(
                db, sql: "SELECT COUNT(*) FROM audit WHERE user != '(server)' OR seq <= ?", arguments: [trail])!
        }
        #expect(kept >= trail, "the audit trail was not kept")
        // A new write is numbered past everything the server has seen, so it is taken.
        try Self.addContacts(petr, 1, from: 600)
        _ = try await SyncEngine(store: petr, transport: serving, wall: { Self.wall }).sync()
        #expect(transport.ledger.state.contacts.count == 67)
        #expect(try petr.outboxCount() == 0)
        let reopened = try LocalStore.open(in: directory.sub("petr"))
        #expect(reopened.state == petr.state && reopened.session == petr.session)
    }

    @Test("a fresh replica takes the image, then pulls only what came after it")
    func takesImage() async throws {
        let directory = TempDirectory("image")
        let (transport, jana) = try await Self.serverWithWriter("jana", in: directory, contacts: 40)
        let serving = ImageServingTransport(transport)
        serving.image = try await Self.image(from: transport, in: directory, name: "at40")
        try Self.addContacts(jana, 5, from: 40)
        _ = try await SyncEngine(store: jana, transport: transport, wall: { Self.wall }).sync()

        let petr = try LocalStore.create(in: directory.sub("petr"), identity: Self.identity(0xB1, "petr"))
        let report = try await SyncEngine(store: petr, transport: serving, wall: { Self.wall }).sync()
        #expect(report.imageEntities == 40)
        #expect(report.pulledChanges == 5)
        #expect(petr.state == jana.state)
        #expect(try petr.reader.contacts(tag: "t1").count == jana.reader.contacts(tag: "t1").count)
        #expect(petr.identity == Self.identity(0xB1, "petr"))
        #expect(try petr.integrityCheck() == ["ok"])
        // Not fresh any more: the next sync does not ask for an image.
        _ = try await SyncEngine(store: petr, transport: serving, wall: { Self.wall }).sync()
        #expect(serving.downloads == 1)
        let reopened = try LocalStore.open(in: directory.sub("petr"))
        #expect(reopened.state == jana.state)
        #expect(reopened.session == petr.session)
    }

    @Test("an image that does not fit is refused with a reason, and the replica is left as it was")
    func refusals() async throws {
        let directory = TempDirectory("image")
        let (acme, _) = try await Self.serverWithWriter("writer-acme", in: directory, contacts: 12)
        let (globex, _) = try await Self.serverWithWriter(
            "writer-globex", in: directory, contacts: 12, tenant: "globex", epoch: 9)
        let good = try await Self.image(from: acme, in: directory, name: "good")
        let otherTenant = try await Self.image(from: globex, tenant: "globex", in: directory, name: "globex")
        let garbage = directory.sub("garbage.sqlite")
        try Data(repeating: 0x5A, count: 64 * 1024).write(to: URL(fileURLWithPath: garbage))
        let truncated = directory.sub("truncated.sqlite")
        let whole = try Data(contentsOf: URL(fileURLWithPath: good))
        try whole.prefix(whole.count / 2).write(to: URL(fileURLWithPath: truncated))

        let petr = try LocalStore.create(in: directory.sub("petr"), identity: Self.identity(0xB1, "petr"))
        let before = try Data(contentsOf: URL(fileURLWithPath: petr.path))
        for (image, reason) in [(otherTenant, "tenant globex"), (garbage, "not a database"), (truncated, "malformed")] {
            let copy = directory.sub("copy.sqlite")
            unlink(copy)
            try FileManager.default.copyItem(atPath: image, toPath: copy)
            do {
                try petr.adoptImage(at: copy)
                Issue.record("\(image) was taken")
            } catch {
                #expect(error.code == .imageRefused, "\(error)")
                #expect(error.message.contains(reason), "\(error.message)")
            }
            #expect(try petr.isFresh())
            #expect(petr.identity == Self.identity(0xB1, "petr"))
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: petr.path)) == before, "a refused image changed the file")
        // A replica with local work does not take even a good image.
        try Self.addContacts(petr, 1, from: 1_000)
        let copy = directory.sub("copy.sqlite")
        unlink(copy)
        try FileManager.default.copyItem(atPath: good, toPath: copy)
        #expect(throws: StoreError.self) { try petr.adoptImage(at: copy) }
        #expect(try petr.outboxCount() == 1)

        // Through the engine, a refused image only costs the download: the replica pulls.
        let eva = try LocalStore.create(in: directory.sub("eva"), identity: Self.identity(0xB2, "eva"))
        let serving = ImageServingTransport(acme)
        serving.image = otherTenant
        let report = try await SyncEngine(store: eva, transport: serving, wall: { Self.wall }).sync()
        #expect(report.imageEntities == nil)
        #expect(report.imageRefusal?.contains("globex") == true)
        #expect(report.pulledChanges == 12)
        #expect(try eva.reader.contacts().count == 12)
    }

    @Test("a replica open twice (a second process) does not take an image; both stay usable")
    func replicaOpenTwice() async throws {
        let directory = TempDirectory("image")
        let (transport, _) = try await Self.serverWithWriter("writer", in: directory, contacts: 5)
        let image = try await Self.image(from: transport, in: directory, name: "image")
        let first = try LocalStore.create(in: directory.sub("petr"), identity: Self.identity(0xB1, "petr"))
        let second = try LocalStore.open(in: directory.sub("petr"))
        try FileManager.default.copyItem(atPath: image, toPath: second.imageDownloadPath)
        do {
            try second.adoptImage(at: second.imageDownloadPath)
            Issue.record("the image was taken under another connection")
        } catch {
            #expect(error.code == .imageRefused && error.message.contains("another process"), "\(error)")
        }
        // Both connections still work; with a local write the engine pushes and pulls as before.
        try Self.addContacts(first, 1, from: 100)
        #expect(second.state.isBottom)
        let serving = ImageServingTransport(transport)
        serving.image = image
        let report = try await SyncEngine(store: first, transport: serving, wall: { Self.wall }).sync()
        #expect(report.imageEntities == nil, "not fresh any more: it has a local write")
        #expect(try first.reader.contacts().count == 6)
    }

    @Test(
        "a process killed at any moment while taking an image leaves either the fresh replica or the image, never a mix"
    )
    func killedWhileTakingImage() async throws {
        let directory = TempDirectory("image-kill")
        let transport = InProcessTransport(ledger: TenantLedger(epoch: ServerEpoch(rawValue: 7)))
        let writer = try LocalStore.create(in: directory.sub("writer"), identity: Self.identity(0xC1, "w"))
        try writer.importContacts(
            (0..<3_000).map { ContactDraft(name: "Contact \($0)", phones: ["+42060\(1_000_000 + $0)"]) },
            wall: Self.wall)
        _ = try await SyncEngine(store: writer, transport: transport, wall: { Self.wall }).sync()
        let image = try await Self.image(from: transport, in: directory, name: "image")
        let seed = FuzzSettings.replaySeed ?? 0x1A6E
        var rng = SeededRandom(seed: seed)
        print("killedWhileTakingImage: seed \(seed) (replay with KRALIKI_SEED=\(seed))")
        var outcomes = (fresh: 0, taken: 0)
        for round in 0..<(FuzzSettings.isLong ? 200 : 20) {
            let replica = directory.sub("replica-\(round)")
            let identity = Self.identity(0xD000 + UInt64(round), "petr")
            // Created and closed again: the child must be the file's only user.
            let download = try LocalStore.create(in: replica, identity: identity).imageDownloadPath
            try FileManager.default.copyItem(atPath: image, toPath: download)
            let process = Process()
            process.executableURL = URL(fileURLWithPath: CrashTests.tortureBinary)
            process.arguments = ["adopt", replica]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            try await Task.sleep(for: .milliseconds(rng.int(0...150)))
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()

            // Whatever the moment: the replica opens, is sound, is still this replica, and holds
            // either nothing or the whole image.
            let reopened = try LocalStore.open(in: replica)
            #expect(try reopened.integrityCheck() == ["ok"], "round \(round)")
            #expect(reopened.identity == identity, "round \(round): identity \(reopened.identity)")
            #expect(reopened.session.replica == identity.replica, "round \(round)")
            if try reopened.isFresh() {
                outcomes.fresh += 1
                // Taking it again (as the next sync would) works.
                unlink(reopened.imageDownloadPath)
                try FileManager.default.copyItem(atPath: image, toPath: reopened.imageDownloadPath)
                try reopened.adoptImage(at: reopened.imageDownloadPath)
            } else {
                outcomes.taken += 1
            }
            #expect(reopened.state == writer.state, "round \(round): neither nothing nor the whole image")
            #expect(reopened.session.epoch == ServerEpoch(rawValue: 7), "round \(round)")
            #expect(reopened.clock.last.replica == identity.replica, "round \(round)")
        }
        print("killedWhileTakingImage: \(outcomes.fresh) rounds left fresh, \(outcomes.taken) with the image taken")
    }
}
