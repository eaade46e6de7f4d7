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

/// The server's disk fills up (a real tmpfs, ENOSPC from the kernel) while a replica pushes:
/// a push whose commit finds no room is answered 503 (retry), never acknowledged, and leaves
/// nothing behind — not in the file, not in the server's memory; the replica keeps it in its
/// outbox; `kraliki_ingest_errors_total` counts it for the operator's alert. Once there is room
/// the same replica syncs as if nothing happened, and a second one ends identical to it.
@Suite("Disk full: the server", .serialized)
struct DiskFullServerTests {
    @Test(
        "pushes that find the server's disk full are refused with 503 and lose or duplicate nothing",
        .enabled(if: SmallDisk.canMount, "mounting a tmpfs needs root"))
    func serverDiskFull() async throws {
        let disk = try SmallDisk(size: "64m")
        let server = try await RunningServer.start { $0.dataDirectory = disk.path + "/data" }
        let replicas = TempDirectory("disk-full-replicas")
        let jana = try await server.enrolReplica(in: replicas.sub("jana"), user: "jana")
        let petr = try await server.enrolReplica(in: replicas.sub("petr"), user: "petr")
        for name in (0..<5).map({ "Before \($0)" }) {
            try jana.store.write(wall: SyncEngine.systemWall()) { state, context throws(ValidationError) in
                try state.createContact(ContactDraft(name: name), context)
            }
        }
        _ = try await jana.sync()

        try disk.fill(leaving: 0)
        try jana.store.importContacts(
            (0..<3_000).map { ContactDraft(name: "During \($0)", company: "Acme \($0 % 40)") },
            wall: SyncEngine.systemWall(), contactsPerChange: 1)
        do {
            _ = try await jana.sync()
            Issue.record("every push fitted on the full disk")
        } catch let failure as SyncFailure {
            #expect(failure.code == .busy, "\(failure)")
        }
        // What the server acknowledged is in its file; the rest is in the replica's outbox.
        let acknowledged = try server.store.sequence(of: "acme")
        let serverContacts = try server.store.state(of: "acme").contacts.count
        #expect(serverContacts == Int(acknowledged), "the ledger counts a change its state lacks")
        #expect(serverContacts + (try jana.store.outboxCount()) == 3_005)
        #expect(serverContacts < 3_005)
        print(
            "server disk full: \(serverContacts) of 3,005 changes acknowledged before the disk was full, \(try jana.store.outboxCount()) kept in the outbox"
        )

        // What the operator's alert (KralikiSyncIngestErrors) watches.
        let raw = try RawClient(server: server)
        let metrics = try await raw.send(.GET, "/metrics", token: server.metricsToken).text
        let errors = metrics.split(separator: "\n").first { $0.hasPrefix("kraliki_ingest_errors_total ") }
        #expect(errors.map { Double($0.split(separator: " ")[1]) ?? 0 } ?? 0 >= 1, "\(errors ?? "no counter")")
        await raw.shutdown()

        try disk.free()
        _ = try await jana.sync()
        _ = try await petr.sync()
        #expect(try jana.store.outboxCount() == 0)
        #expect(try server.store.sequence(of: "acme") == 3_005, "a change was lost or counted twice")
        let serverState = try server.store.state(of: "acme")
        let same = petr.store.state == jana.store.state && serverState == jana.store.state
        #expect(same, "the replicas and the server differ")
        #expect(try petr.store.reader.contacts().count == 3_005)
        await jana.close()
        await petr.close()
        await server.stop()
    }
}
