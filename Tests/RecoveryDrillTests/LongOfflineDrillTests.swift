import CRDT
import CRDTTestSupport
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

/// Drill 6 of issue #7 (docs/reliability.md): a replica offline past the tombstone retention
/// comes back. Its own offline changes are pushed, deleted records do not come back, and it
/// ends identical to the others.
///
/// A real server (HTTP/2 + TLS on loopback, retention 173 ms so the drill runs in seconds) and
/// four library replicas with real SQLite files. Seeded: three replicas create, edit and delete
/// contacts, notes and schedule entries while the fourth, offline, does the same on its own copy
/// — including edits of records the others delete. Time passes the retention, the server
/// collects, the absent replica syncs.
@Suite("Drill 6: long offline", .serialized)
struct LongOfflineDrillTests {
    /// One replica's seeded writer. Every write carries a unique marker so it can be found.
    struct Writer {
        let replica: EnrolledReplica
        var random: SeededRandom
        let tag: String
        var count = 0

        init(_ replica: EnrolledReplica, seed: UInt64, tag: String) {
            self.replica = replica
            random = SeededRandom(seed: seed)
            self.tag = tag
        }

        var store: LocalStore { replica.store }

        mutating func marker() -> String {
            count += 1
            return "\(tag)-\(count)"
        }

        func active<E: Entity>(_ map: ORMap<EntityID, E>) -> [EntityID] {
            map.sortedKeys.filter { map[$0]!.isActive }
        }

        /// What one write left: the entity, the marker it wrote, and the contact a new note
        /// refers to.
        struct Write {
            let entity: EntityRef
            /// Nil for a deletion.
            let marker: String?
            var contact: EntityID? = nil
        }

        /// One random write; returns what it wrote, if it wrote a marker.
        @discardableResult
        mutating func step() throws -> Write? {
            let contacts = active(store.state.contacts)
            let notes = active(store.state.notes)
            let entries = active(store.state.schedule)
            let wall = SyncEngine.systemWall()
            let roll = random.int(0...99)
            let name = marker()
            switch roll {
            case _ where roll < 25 || contacts.isEmpty:
                let change = try store.write(wall: wall) { state, context throws(ValidationError) in
                    try state.createContact(ContactDraft(name: name), context)
                }
                return Write(entity: EntityRef(.contact, change.contacts.sortedKeys[0]), marker: name)
            case 25..<50:
                let id = random.pick(contacts)
                try store.write(wall: wall) { state, context throws(ValidationError) in
                    var edit = ContactEdit()
                    edit.name = name
                    return try state.editContact(id, edit, context)
                }
                return Write(entity: EntityRef(.contact, id), marker: name)
            case 50..<65:
                let contact = random.pick(contacts)
                let change = try store.write(wall: wall) { state, context throws(ValidationError) in
                    try state.addNote(NoteDraft(contact: contact, text: name), context)
                }
                return Write(entity: EntityRef(.note, change.notes.sortedKeys[0]), marker: name, contact: contact)
            case 65..<75:
                let start = Int64(wall) + Int64(random.int(1...500)) * 3_600_000
                let change = try store.write(wall: wall) { state, context throws(ValidationError) in
                    try state.addScheduleEntry(
                        ScheduleDraft(title: name, start: start, end: start + 1_800_000, kind: "callback"), context)
                }
                return Write(entity: EntityRef(.schedule, change.schedule.sortedKeys[0]), marker: name)
            case 75..<85 where !notes.isEmpty:
                let id = random.pick(notes)
                try store.write(wall: wall) { state, context throws(ValidationError) in
                    try state.delete(.note, id, context)
                }
                return Write(entity: EntityRef(.note, id), marker: nil)
            case 85..<90 where !entries.isEmpty:
                let id = random.pick(entries)
                try store.write(wall: wall) { state, context throws(ValidationError) in
                    try state.delete(.schedule, id, context)
                }
                return Write(entity: EntityRef(.schedule, id), marker: nil)
            default:
                // Delete a contact no live note or entry of this replica refers to (a referenced
                // one would be kept by the server anyway, as a conflict to resolve).
                let referenced = Set(
                    notes.compactMap { store.state.notes[$0]!.contact.value?.id }
                        + entries.compactMap { store.state.schedule[$0]!.contact.value?.id })
                guard let id = contacts.filter({ !referenced.contains($0) }).randomElement(using: &random) else {
                    return nil
                }
                try store.write(wall: wall) { state, context throws(ValidationError) in
                    try state.delete(.contact, id, context)
                }
                return Write(entity: EntityRef(.contact, id), marker: nil)
            }
        }
    }

    /// What a replica holds of the entities the server still has: with collected records
    /// removed, a replica must equal the server exactly.
    static func withoutCollected(_ state: TenantState, _ collected: Set<EntityRef>) -> TenantState {
        func keep<E: Entity>(_ map: ORMap<EntityID, E>, _ kind: EntityKind) -> ORMap<EntityID, E> {
            ORMap(map.valueByKey.filter { !collected.contains(EntityRef(kind, $0.key)) })
        }
        return TenantState(
            contacts: keep(state.contacts, .contact), notes: keep(state.notes, .note),
            schedule: keep(state.schedule, .schedule))
    }

    static func holds(_ ref: EntityRef, _ state: TenantState) -> Bool {
        switch ref.kind {
        case .contact: state.contacts[ref.id] != nil
        case .note: state.notes[ref.id] != nil
        case .schedule: state.schedule[ref.id] != nil
        }
    }

    static func marker(of ref: EntityRef, in state: TenantState) -> [String] {
        switch ref.kind {
        case .contact: state.contacts[ref.id]?.name.values ?? []
        case .note: state.notes[ref.id]?.body.values ?? []
        case .schedule: state.schedule[ref.id]?.title.values ?? []
        }
    }

    @Test("a replica away past the retention pushes its work, re-bootstraps, and deleted records stay deleted")
    func longOffline() async throws {
        let seeds = FuzzSettings.seeds(count: 4, longCount: 40, base: 0x6C6F_6E67)
        var figures = (
            seeds: 0, offlineWrites: 0, collected: 0, refused: 0, lost: 0, resurrected: 0, throughImage: 0
        )
        for seed in seeds {
            // Every other seed, the server writes a bootstrap image after the collection, so the
            // returning replica re-bootstraps through it instead of pulling everything.
            let withImage = seed % 2 == 0
            let server = try await RunningServer.start { $0.retentionDays = 0.000_002 }  // 173 ms
            let directory = TempDirectory("long-offline")
            var online = [Writer]()
            for (index, user) in ["jana", "petr", "eva"].enumerated() {
                let replica = try await server.enrolReplica(in: directory.sub(user), user: user)
                online.append(Writer(replica, seed: seed &+ UInt64(index), tag: "\(user)-\(seed)"))
            }
            var away = Writer(
                try await server.enrolReplica(in: directory.sub("away"), user: "field"), seed: seed &+ 99,
                tag: "away-\(seed)")
            var random = SeededRandom(seed: seed)

            // Everyone works and syncs; the field replica takes a copy and leaves.
            for _ in 0..<30 { try online[random.int(0...2)].step() }
            for writer in online { _ = try await writer.replica.sync() }
            _ = try await away.replica.sync()
            for writer in online { _ = try await writer.replica.sync() }

            // Offline: the field replica works on its copy; the others go on, deleting too.
            var offlineWrites = [Writer.Write]()
            for _ in 0..<40 {
                if let write = try away.step() { offlineWrites.append(write) }
                for _ in 0..<2 { try online[random.int(0...2)].step() }
                if random.chance(0.2) { _ = try await online[random.int(0...2)].replica.sync() }
            }
            // Make sure something it knew is deleted while it is away.
            let known = away.active(away.store.state.contacts).filter { id in
                online[0].store.state.contacts[id]?.isActive == true
                    && !online[0].store.state.notes.valueByKey.values.contains { $0.contact.value?.id == id }
                    && !online[0].store.state.schedule.valueByKey.values.contains { $0.contact.value?.id == id }
            }
            if let id = known.first {
                try online[0].store.write(wall: SyncEngine.systemWall()) { state, context throws(ValidationError) in
                    try state.delete(.contact, id, context)
                }
            }
            for _ in 0..<2 { for writer in online { _ = try await writer.replica.sync() } }

            // Past the retention: two collection runs further apart than it.
            _ = try await server.runtime.collectGarbage()
            try await Task.sleep(for: .milliseconds(400))
            for writer in online { _ = try await writer.replica.sync() }
            _ = try await server.runtime.collectGarbage()
            let collectedRefs = Set(try server.store.collectedEntities(of: "acme"))
            #expect(!collectedRefs.isEmpty, "seed \(seed): nothing was collected; the drill proves nothing")
            if withImage { _ = try server.runtime.images.refresh(tenant: "acme", wall: ServerRuntime.systemWall()) }

            // The field replica comes back. Its cursor is stale when a deletion after it was
            // collected (the usual case: see the deletion made above).
            let awayCursor = away.store.session.pullCursor
            let awayCursorWasStale = awayCursor < (try server.store.collectedCount(of: "acme").through)
            let report = try await away.replica.sync()
            #expect(report.rebootstrapped == awayCursorWasStale, "seed \(seed) (replay with KRALIKI_SEED=\(seed))")
            if withImage && report.rebootstrapped {
                #expect(
                    report.imageEntities != nil,
                    "seed \(seed): the re-bootstrap pulled instead of taking the image: \(report.imageRefusal ?? "no image")"
                )
                if report.imageEntities != nil { figures.throughImage += 1 }
            }
            for _ in 0..<2 { for writer in online + [away] { _ = try await writer.replica.sync() } }

            let serverState = try server.store.state(of: "acme")
            // 1. Every replica equals the server, apart from the collected records it still holds.
            for writer in online + [away] {
                let same = Self.withoutCollected(writer.store.state, collectedRefs) == serverState
                #expect(same, "seed \(seed): \(writer.tag) differs from the server (replay with KRALIKI_SEED=\(seed))")
            }
            // 2. Deleted stays deleted: no collected record on the server or the returned replica.
            let resurrected = collectedRefs.filter { ref in
                Self.holds(ref, serverState) || Self.holds(ref, away.store.state)
            }
            #expect(resurrected.isEmpty, "seed \(seed): collected records came back: \(resurrected)")
            // 3. Every offline write is on the server — its newest value for each record, kept
            // beside colleagues' concurrent ones — unless it edited a collected record or added a
            // note to one: exactly those are refused, each with its reason.
            // (Deleting a collected record again is ignored: there is nothing to keep.)
            func touchesCollected(_ write: Writer.Write) -> Bool {
                guard write.marker != nil else { return false }
                return collectedRefs.contains(write.entity)
                    || write.contact.map { collectedRefs.contains(EntityRef(.contact, $0)) } ?? false
            }
            let refused = try away.store.rejectedChanges()
            #expect(refused.allSatisfy { $0.code == "entity-collected" }, "seed \(seed): \(refused)")
            #expect(
                refused.count == offlineWrites.filter(touchesCollected).count,
                "seed \(seed): \(refused.count) refused, \(offlineWrites.filter(touchesCollected).count) expected")
            var newest = [EntityRef: String]()
            for write in offlineWrites where !touchesCollected(write) {
                if let marker = write.marker { newest[write.entity] = marker }
            }
            let lost = newest.filter { ref, marker in !Self.marker(of: ref, in: serverState).contains(marker) }
            #expect(lost.isEmpty, "seed \(seed): offline writes missing on the server: \(lost)")
            #expect(try away.store.outboxCount() == 0)
            #expect(try server.store.integrityCheck() == ["ok"])

            figures.seeds += 1
            figures.offlineWrites += offlineWrites.count
            figures.collected += collectedRefs.count
            figures.refused += refused.count
            figures.lost += lost.count
            figures.resurrected += resurrected.count
            for writer in online + [away] { await writer.replica.close() }
            await server.stop()
        }
        print(
            "drill long-offline: seeds \(figures.seeds), offline writes \(figures.offlineWrites), tombstones collected "
                + "\(figures.collected), offline edits of collected records refused \(figures.refused), "
                + "re-bootstrapped through an image \(figures.throughImage), "
                + "lost = \(figures.lost), resurrected = \(figures.resurrected)")
    }
}
