import CRDT
import Domain
import DomainTestSupport
import Foundation
import GRDB
import LocalStorage
import Replica
import ServerTestSupport
import StoreSupport
import SyncServer
import SystemTestSupport
import Testing

/// Bootstrap images over HTTP/2 with TLS: a fresh replica takes the server's prebuilt replica
/// file, pulls only what came after it, and ends as a replica that pulled everything would.
@Suite("Bootstrap images")
struct BootstrapImageTests {
    /// Contacts, notes, an edit and a deletion by `replica`.
    static func work(_ store: LocalStore, count: Int, prefix: String) throws {
        var ids = [EntityID]()
        for index in 0..<count {
            let change = try store.write(wall: SyncEngine.systemWall()) { state, context throws(ValidationError) in
                try state.createContact(
                    ContactDraft(
                        name: "\(prefix) \(index)", phones: ["+42060\(String(1_000_000 + index))"],
                        emails: ["\(prefix.lowercased())\(index)@example.cz"], tags: ["vip"]), context)
            }
            ids.append(change.contacts.keys.first!)
        }
        var edit = ContactEdit()
        edit.title = "Head of \(prefix)"
        try store.write(wall: SyncEngine.systemWall()) { state, context throws(ValidationError) in
            try state.editContact(ids[0], edit, context)
        }
        try store.write(wall: SyncEngine.systemWall()) { state, context throws(ValidationError) in
            try state.delete(.contact, ids[1], context)
        }
        try store.write(wall: SyncEngine.systemWall()) { state, context throws(ValidationError) in
            try state.addNote(NoteDraft(contact: ids[2], text: "called"), context)
        }
    }

    /// A server (images written only when a test asks) and Jana's replica with `count`
    /// contacts of work, pushed.
    static func serverWithJana(count: Int) async throws -> (RunningServer, TempDirectory, EnrolledReplica) {
        let server = try await RunningServer.start { $0.imageMinChanges = 0 }
        let directory = TempDirectory("replicas")
        let jana = try await server.enrolReplica(in: directory.sub("jana"), user: "jana")
        try work(jana.store, count: count, prefix: "Before")
        _ = try await jana.sync()
        return (server, directory, jana)
    }

    /// Over HTTP/2: a replica away longer than the retention is told its cursor is stale, pushes,
    /// re-bootstraps — and takes the image written after the collection instead of pulling
    /// everything; deleted stays deleted, its refused edit is kept with its reason.
    @Test("a replica back after the retention re-bootstraps through the image; deleted stays deleted")
    func rebootstrapThroughImage() async throws {
        let server = try await RunningServer.start {
            $0.imageMinChanges = 0
            $0.retentionDays = 0.000_002  // 173 ms
        }
        let directory = TempDirectory("replicas")
        let jana = try await server.enrolReplica(in: directory.sub("jana"), user: "jana")
        try Self.work(jana.store, count: 60, prefix: "Before")
        _ = try await jana.sync()
        let petr = try await server.enrolReplica(in: directory.sub("petr"), user: "petr")
        _ = try await petr.sync()
        // Away: Petr edits a contact Jana deletes meanwhile; Jana goes on.
        let gone = jana.store.state.contacts.sortedKeys.first { id in
            jana.store.state.contacts[id]!.isActive
                && !jana.store.state.notes.valueByKey.values.contains { $0.contact.value?.id == id }
        }!
        var edit = ContactEdit()
        edit.title = "Edited offline"
        try petr.store.write(wall: SyncEngine.systemWall()) { state, context throws(ValidationError) in
            try state.editContact(gone, edit, context)
        }
        try jana.store.write(wall: SyncEngine.systemWall()) { state, context throws(ValidationError) in
            try state.delete(.contact, gone, context)
        }
        try Self.work(jana.store, count: 10, prefix: "Meanwhile")
        _ = try await jana.sync()
        // Past the retention: the deletion's tombstone is collected; then the image is written.
        _ = try await server.runtime.collectGarbage()
        try await Task.sleep(for: .milliseconds(400))
        _ = try await jana.sync()
        _ = try await server.runtime.collectGarbage()
        let collected = Set(try server.store.collectedEntities(of: "acme"))
        #expect(collected.contains(EntityRef(.contact, gone)))
        _ = try server.runtime.images.refresh(tenant: "acme", wall: ServerRuntime.systemWall())

        let report = try await petr.sync()
        #expect(report.rebootstrapped)
        #expect(report.imageEntities != nil, "the re-bootstrap pulled instead: \(report.imageRefusal ?? "no image")")
        #expect(petr.store.state.contacts[gone] == nil, "a collected contact came back")
        #expect(try petr.store.reader.contacts() == jana.store.reader.contacts())
        let refused = try petr.store.rejectedChanges()
        #expect(refused.map(\.code) == ["entity-collected"], "\(refused)")
        // It goes on as an ordinary replica: a new contact reaches Jana.
        try petr.store.write(wall: SyncEngine.systemWall()) { state, context throws(ValidationError) in
            try state.createContact(ContactDraft(name: "After the return"), context)
        }
        _ = try await petr.sync()
        _ = try await jana.sync()
        #expect(try jana.store.reader.contacts(search: "After the return").count == 1)
        await petr.close()
        await jana.close()
        await server.stop()
    }

    @Test("a fresh replica takes the image, pulls only what came after it, keeps its own identity and can push")
    func freshReplicaTakesImage() async throws {
        let (server, directory, jana) = try await Self.serverWithJana(count: 120)
        let image = try server.runtime.images.refresh(tenant: "acme", wall: ServerRuntime.systemWall())
        try Self.work(jana.store, count: 15, prefix: "After")
        _ = try await jana.sync()

        let petr = try await server.enrolReplica(in: directory.sub("petr"), user: "petr")
        let report = try await petr.sync()
        #expect(report.imageRefusal == nil)
        #expect(report.imageEntities == 121, "120 contacts and a note in the image")
        #expect(report.pulledChanges > 0 && report.pulledChanges <= 18, "pulled \(report.pulledChanges)")
        #expect(petr.store.session.epoch == image.epoch)
        let same = petr.store.state == jana.store.state
        #expect(same, "the replica that took the image differs from the one that pulled everything")
        #expect(try petr.store.reader.contacts().map(\.name) == jana.store.reader.contacts().map(\.name))
        #expect(
            try petr.store.reader.contacts(search: "before 7").count
                == jana.store.reader.contacts(search: "before 7").count)

        // Its own identity: its device ID, its user, a clock past every stamp it holds, no trail
        // of the builder's.
        #expect(petr.store.identity.replica.hex == petr.credentials.deviceId)
        #expect(petr.store.session.replica.hex == petr.credentials.deviceId)
        let newest = petr.store.state.newestStamp!
        #expect(petr.store.clock.last.time >= newest.time)
        // A contact that came in the image has no trail here (the builder's is dropped); one
        // pulled after it has one row, naming its author.
        func contact(_ name: String) -> EntityID {
            jana.store.state.contacts.valueByKey.first { $0.value.name.value == name }!.key
        }
        #expect(try petr.store.reader.history(of: contact("Before 3"))?.changes == [], "the builder's trail came along")
        let pulled = try petr.store.reader.history(of: contact("After 3"))?.changes ?? []
        #expect(
            pulled.map { [$0.user, $0.device, $0.action] } == [["jana", jana.credentials.deviceId, "pull"]],
            "\(pulled)")

        // What it writes is its own: the server accepts it (a foreign stamp would be refused).
        try petr.store.write(wall: SyncEngine.systemWall()) { state, context throws(ValidationError) in
            try state.createContact(ContactDraft(name: "Petr's own"), context)
        }
        let pushed = try await petr.sync()
        #expect(pushed.pushedChanges == 1 && pushed.rejectedChanges == 0)
        _ = try await jana.sync()
        #expect(petr.store.state == jana.store.state)

        // The file is sound and reopens as the same replica, in WAL mode.
        let path = petr.store.path
        await petr.close()
        let reopened = try LocalStore.open(in: directory.sub("petr"))
        #expect(reopened.state == jana.store.state)
        #expect(reopened.identity.replica.hex == petr.credentials.deviceId)
        let check = try DatabaseQueue(path: path)
        let mode = try await check.read { db in try String.fetchOne(db, sql: "PRAGMA journal_mode") }
        #expect(mode == "wal")
        #expect(!FileManager.default.fileExists(atPath: directory.sub("petr") + "/image.download"))
        await jana.close()
        await server.stop()
    }

    @Test("a replica that holds anything pulls as before; without an image a fresh one pulls everything")
    func onlyFreshReplicasTakeImages() async throws {
        let server = try await RunningServer.start { $0.imageMinChanges = 0 }
        let directory = TempDirectory("replicas")
        let jana = try await server.enrolReplica(in: directory.sub("jana"), user: "jana")
        try Self.work(jana.store, count: 10, prefix: "Contact")
        // No image yet: the fresh replica asks, gets 404 no-image, and pulls.
        let petr = try await server.enrolReplica(in: directory.sub("petr"), user: "petr")
        _ = try await jana.sync()
        let first = try await petr.sync()
        #expect(first.imageEntities == nil && first.pulledChanges > 0)
        try server.runtime.images.refresh(tenant: "acme", wall: ServerRuntime.systemWall())
        // A replica with unsent work is not fresh: it pushes and pulls.
        let eva = try await server.enrolReplica(in: directory.sub("eva"), user: "eva")
        try eva.store.write(wall: SyncEngine.systemWall()) { state, context throws(ValidationError) in
            try state.createContact(ContactDraft(name: "Eva's"), context)
        }
        let report = try await eva.sync()
        #expect(report.imageEntities == nil)
        #expect(report.pushedChanges == 1)
        _ = try await jana.sync()
        #expect(eva.store.state == jana.store.state)
        // The engine can be told not to take one.
        let ota = try await server.enrolReplica(in: directory.sub("ota"), user: "ota")
        var engine = ota.engine
        engine.takesImages = false
        #expect(try await engine.sync().imageEntities == nil)
        #expect(ota.store.state == jana.store.state)
        for replica in [jana, petr, eva, ota] { await replica.close() }
        await server.stop()
    }

    @Test("an image damaged on the way is thrown away; the replica pulls everything instead, in the same sync")
    func damagedImage() async throws {
        let (server, directory, jana) = try await Self.serverWithJana(count: 30)
        let image = try server.runtime.images.refresh(tenant: "acme", wall: ServerRuntime.systemWall())
        // One byte changed on the server's disk after the digest was taken.
        var bytes = try Data(contentsOf: URL(fileURLWithPath: image.path))
        bytes[bytes.count / 2] ^= 0xFF
        try bytes.write(to: URL(fileURLWithPath: image.path))

        let petr = try await server.enrolReplica(in: directory.sub("petr"), user: "petr")
        // The download itself says why.
        do {
            _ = try await petr.client.downloadImage(to: petr.store.imageDownloadPath)
            Issue.record("a damaged image was accepted")
        } catch let failure as SyncFailure {
            #expect(failure.code == .unreachable, "\(failure)")
            #expect(failure.message.contains("damaged"))
        }
        // The engine pulls instead: a link that damages or cuts a large file every time must
        // not keep a new replica from syncing.
        let report = try await petr.sync()
        #expect(report.imageEntities == nil)
        #expect(report.imageRefusal?.contains("damaged") == true, "\(String(describing: report.imageRefusal))")
        #expect(report.pulledChanges > 0)
        #expect(petr.store.state == jana.store.state)
        #expect(!FileManager.default.fileExists(atPath: petr.store.imageDownloadPath))
        await jana.close()
        await petr.close()
        await server.stop()
    }

    @Test("an image outlives a restart (its digest is beside it); two images are kept, older ones go")
    func imageOutlivesRestart() async throws {
        let directory = TempDirectory("restart")
        var server = try await RunningServer.start(directory: directory) { $0.imageMinChanges = 0 }
        let jana = try await server.enrolReplica(in: directory.sub("jana"), user: "jana")
        var images = [BootstrapImages.Image]()
        for round in 0..<3 {
            try Self.work(jana.store, count: 10, prefix: "Round\(round)")
            _ = try await jana.sync()
            images.append(try server.runtime.images.refresh(tenant: "acme", wall: ServerRuntime.systemWall()))
        }
        let folder = (images[2].path as NSString).deletingLastPathComponent
        let files = try FileManager.default.contentsOfDirectory(atPath: folder).filter { $0.hasPrefix("image-") }
        #expect(
            Set(files)
                == Set(
                    images[1...].flatMap { image -> [String] in
                        let name = (image.path as NSString).lastPathComponent
                        return [name, name + ".sha256"]
                    }), "\(files)")
        await server.stop()

        let port = server.port
        server = try await RunningServer.start(directory: directory) {
            $0.port = port
            $0.imageMinChanges = 0
        }
        #expect(try server.runtime.images.servable(of: "acme") == images[2], "the restarted server lost its image")
        let petr = try await server.enrolReplica(in: directory.sub("petr"), user: "petr")
        let report = try await petr.sync()
        #expect(report.imageEntities == 33, "30 contacts and 3 notes")
        #expect(petr.store.state == jana.store.state)
        await jana.close()
        await petr.close()
        await server.stop()
    }

    @Test("after a restore (new epoch) the builder starts over; a fresh replica ends identical to the others")
    func imageFollowsRestore() async throws {
        let directory = TempDirectory("restore")
        var server = try await RunningServer.start(directory: directory) { $0.imageMinChanges = 0 }
        let jana = try await server.enrolReplica(in: directory.sub("jana"), user: "jana")
        try Self.work(jana.store, count: 8, prefix: "Kept")
        _ = try await jana.sync()
        let backup = directory.sub("backup.sqlite")
        _ = try server.store.backup(to: backup, wall: ServerRuntime.systemWall())
        try Self.work(jana.store, count: 5, prefix: "Lost")  // after the backup: the restore loses them
        _ = try await jana.sync()
        let old = try server.runtime.images.refresh(tenant: "acme", wall: ServerRuntime.systemWall())
        #expect(try server.runtime.images.servable(of: "acme") == old)
        await server.stop()

        let epochs = try ServerDatabase.restore(
            from: backup, into: directory.sub("data"), wall: ServerRuntime.systemWall())
        let port = server.port
        server = try await RunningServer.start(directory: directory) {
            $0.port = port
            $0.imageMinChanges = 0
        }
        // The builder on disk is of the old epoch: it is thrown away, not asked to re-push.
        let new = try server.runtime.images.refresh(tenant: "acme", wall: ServerRuntime.systemWall())
        #expect(new.epoch == epochs["acme"] && new.epoch != old.epoch)
        #expect(new.cursor < old.cursor, "the new image should hold only what the backup held")
        let fromBackup = try server.store.state(of: "acme")
        #expect(fromBackup.contacts.count == 8)
        // Jana re-pushes what the restore lost; a fresh replica takes the new image, pulls the rest.
        #expect(try await jana.sync().epochChanged)
        let petr = try await server.enrolReplica(in: directory.sub("petr"), user: "petr")
        let report = try await petr.sync()
        #expect(report.imageEntities == 9, "8 contacts and a note in the image")
        #expect(petr.store.state == jana.store.state)
        #expect(try petr.store.reader.contacts().count == jana.store.reader.contacts().count)
        await jana.close()
        await petr.close()
        await server.stop()
    }
}
