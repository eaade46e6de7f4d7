import CRDT
import Domain
import DomainTestSupport
import Foundation
import LocalStorage
import Replica
import ServerTestSupport
import StoreSupport
import SystemTestSupport
import Testing

/// Issue #4 end to end: a laptop whose clock ran a year ahead has its work refused with
/// `clock-drift-exceeded` by the real server; a fresh replica re-issues it with `replica-cli
/// refused reissue` (the real binary), syncs, and a third replica sees the values. The old
/// replica's file is never changed, and a second run re-issues nothing.
@Suite("Drill: re-issuing refused changes", .serialized)
struct RefusedReissueDrillTests {
    static let year: Int64 = 365 * 24 * 3_600_000

    static func cli(_ arguments: [String]) async throws -> ProcessOutput {
        var environment = ProcessInfo.processInfo.environment
        environment["LANG"] = "C"
        return try await ChildProcess.run(ChildProcess.builtProduct("replica-cli"), arguments, environment: environment)
    }

    static func json(_ output: ProcessOutput) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(output.stdout.utf8)) as? [String: Any]) ?? [:]
    }

    @Test("a year-fast replica's refused work is re-issued from a fresh replica and reaches everyone once")
    func yearFastWorkReissued() async throws {
        let started = Date()
        let server = try await RunningServer.start()
        let directory = TempDirectory("reissue-drill")
        let wall = { UInt64(SyncEngine.systemWall()) }
        // The office's data, which the laptop pulls while its clock is still right.
        let office = try await server.enrolReplica(in: directory.sub("office"), user: "anna")
        let shared = try office.store.write(wall: wall()) { s, c throws(ValidationError) in
            try s.createContact(ContactDraft(name: "Shared Firm", phones: ["601 111 222"], tags: ["old"]), c)
        }.contacts.sortedKeys[0]
        let gone = try office.store.write(wall: wall()) { s, c throws(ValidationError) in
            try s.createContact(ContactDraft(name: "Soon Deleted"), c)
        }.contacts.sortedKeys[0]
        _ = try await office.sync()
        let oldPath = directory.sub("laptop")
        let laptop = try await server.enrolReplica(in: oldPath, user: "jana", role: .field)
        _ = try await laptop.sync()

        // Then its clock jumps a year ahead, and a day of field work is stamped with it.
        let fast = { UInt64(Int64(SyncEngine.systemWall()) + Self.year) }
        let karel = try laptop.store.write(wall: fast()) { s, c throws(ValidationError) in
            try s.createContact(
                ContactDraft(
                    name: "Karel Dvořák", company: "Dvořák a syn", phones: ["602 333 444"],
                    emails: ["karel@example.cz"],
                    tags: ["fair"], customFields: ["region": "Brno"]), c)
        }.contacts.sortedKeys[0]
        var edit = ContactEdit()
        edit.title = "Owner"
        edit.addTags = ["vip"]
        edit.removeTags = ["fair"]
        try laptop.store.write(wall: fast()) { s, c throws(ValidationError) in try s.editContact(karel, edit, c) }
        try laptop.store.write(wall: fast()) { s, c throws(ValidationError) in
            try s.addNote(NoteDraft(contact: karel, text: "Wants a quote by Friday", durationSeconds: 240), c)
        }
        try laptop.store.write(wall: fast()) { s, c throws(ValidationError) in
            try s.addScheduleEntry(
                ScheduleDraft(
                    title: "Visit Karel", start: 1_893_456_000_000, end: 1_893_459_600_000, assignees: ["jana"],
                    contact: karel, location: "Brno"), c)
        }
        var sharedEdit = ContactEdit()
        sharedEdit.company = "Shared Firm s.r.o."
        sharedEdit.addPhones = ["603 555 666"]
        sharedEdit.removeTags = ["old"]
        try laptop.store.write(wall: fast()) { s, c throws(ValidationError) in try s.editContact(shared, sharedEdit, c)
        }
        var goneEdit = ContactEdit()
        goneEdit.title = "Edited offline"
        try laptop.store.write(wall: fast()) { s, c throws(ValidationError) in try s.editContact(gone, goneEdit, c) }
        let pushed = try await SyncEngine(store: laptop.store, transport: laptop.client, wall: fast).sync()
        #expect(pushed.rejectedChanges == 6)
        #expect(try laptop.store.rejectedChanges().allSatisfy { $0.code == "clock-drift-exceeded" })
        await laptop.close()
        // Meanwhile the office deletes a contact the laptop edited.
        try office.store.write(wall: wall()) { s, c throws(ValidationError) in try s.delete(.contact, gone, c) }
        _ = try await office.sync()

        // What the refused changes held, read-only from the old directory.
        let list = try await Self.cli(["refused", "list", "--data", oldPath, "--json"])
        #expect(list.status == 0, "\(list)")
        let listed = Self.json(list)["refused"] as? [[String: Any]] ?? []
        #expect(listed.count == 6, "\(list)")
        let first = (listed.first?["entities"] as? [[String: Any]])?.first
        #expect(first?["action"] as? String == "create" && first?["id"] as? String == karel.text, "\(list)")
        let text = try await Self.cli(["refused", "list", "--data", oldPath])
        #expect(text.stdout.contains("create contact \(karel.text): name = Karel Dvořák"), "\(text)")
        #expect(text.stdout.contains("tags − fair") && text.stdout.contains("title = Owner"), "\(text)")

        // A fresh replica for the same person, with a correct clock.
        let newPath = directory.sub("laptop-new")
        let fresh = try await server.enrolReplica(in: newPath, user: "jana", role: .field)
        _ = try await fresh.sync()
        await fresh.close()
        let oldBytes = FileManager.default.contents(atPath: oldPath + "/" + LocalStore.fileName)
        let dry = try await Self.cli(["refused", "reissue", "--from", oldPath, "--data", newPath, "--dry-run"])
        #expect(dry.status == 0 && dry.stdout.contains("Dry run"), "\(dry)")
        let run = try await Self.cli(["refused", "reissue", "--from", oldPath, "--data", newPath, "--json"])
        #expect(run.status == 0, "\(run)")
        let report = Self.json(run)
        let reissued = report["reissued"] as? [[String: Any]] ?? []
        #expect(reissued.count == 6, "\(run)")
        // The edit of the contact deleted meanwhile is left out, with its values, not made.
        let leftOut = reissued.flatMap { $0["leftOut"] as? [[String: Any]] ?? [] }
        #expect(leftOut.count == 1, "\(run)")
        #expect(leftOut.first?["reason"] as? String == "deleted", "\(run)")
        #expect(((leftOut.first?["change"] as? [String: Any])?["id"] as? String) == gone.text, "\(run)")
        let created = reissued.flatMap { $0["created"] as? [[String: Any]] ?? [] }
        #expect(created.count == 3, "\(run)")
        let newKarel = try #require(
            created.first { $0["old"] as? String == karel.text }.flatMap { $0["new"] as? String }
                .flatMap { EntityID(text: $0) }, "\(run)")
        #expect(FileManager.default.contents(atPath: oldPath + "/" + LocalStore.fileName) == oldBytes)

        let sync = try await Self.cli(["sync", "--data", newPath, "--json"])
        #expect(sync.status == 0 && Self.json(sync)["rejected"] as? Int == 0, "\(sync)")
        let commands = report["commands"] as? Int ?? -1
        #expect(Self.json(sync)["pushed"] as? Int == commands, "\(sync)")

        // A third replica sees the re-issued values, stamped near the true time.
        let third = try await server.enrolReplica(in: directory.sub("petr"), user: "petr")
        _ = try await third.sync()
        let state = third.store.state
        let contact = try #require(state.contact(newKarel))
        #expect(contact.name.value == "Karel Dvořák" && contact.company.value == "Dvořák a syn")
        #expect(contact.title.value == "Owner" && contact.tags.elements == ["vip"])
        #expect(contact.phones.elements == ["+420602333444"] && contact.emails.elements == ["karel@example.cz"])
        #expect(contact.customFields["region"]?.value == "Brno")
        #expect(abs(Int64(contact.name.stamp!.physical) - Int64(SyncEngine.systemWall())) < 600_000)
        let note = try #require(state.notes.valueByKey.values.first { $0.body.value == "Wants a quote by Friday" })
        #expect(note.contact.value?.id == newKarel && note.duration.value == 240)
        // Its call time defaulted to the fast clock's time; re-issued, it is not a year ahead.
        #expect(note.callTime.value! <= Int64(SyncEngine.systemWall()))
        let entry = try #require(state.schedule.valueByKey.values.first { $0.title.value == "Visit Karel" })
        #expect(entry.contact.value?.id == newKarel && entry.location.value == "Brno")
        #expect(entry.interval.value?.start == 1_893_456_000_000 && entry.assignees.elements == ["jana"])
        let sharedNow = try #require(state.contact(shared))
        #expect(sharedNow.company.value == "Shared Firm s.r.o." && sharedNow.tags.elements.isEmpty)
        #expect(Set(sharedNow.phones.elements) == ["+420601111222", "+420603555666"])
        #expect(state.contact(gone)?.isActive == false && state.contact(gone)?.title.value == nil)
        #expect(!state.contacts.keys.contains(karel), "the refused creation's old ID never reached the server")

        // A second run re-issues nothing, and the next sync has nothing to push.
        let rerun = try await Self.cli(["refused", "reissue", "--from", oldPath, "--data", newPath])
        #expect(rerun.status == 0 && rerun.stdout.contains("Nothing new"), "\(rerun)")
        let again = try await Self.cli(["sync", "--data", newPath, "--json"])
        #expect(Self.json(again)["pushed"] as? Int == 0, "\(again)")
        _ = try await third.sync()
        #expect(third.store.state.contacts.valueByKey.values.filter { $0.name.value == "Karel Dvořák" }.count == 1)
        print(
            "refused reissue drill: 6 changes refused (clock-drift-exceeded, clock +1 year), re-issued as "
                + "\(commands) commands (3 creations with new IDs, 1 edit left out: contact deleted meanwhile), "
                + "accepted \(commands)/\(commands), rerun re-issued 0, old replica file unchanged, "
                + String(format: "%.1f s", Date().timeIntervalSince(started)))
        for replica in [office, third] { await replica.close() }
        await server.stop()
    }
}
