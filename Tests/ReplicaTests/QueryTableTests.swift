import CRDT
import CRDTTestSupport
import Domain
import DomainTestSupport
import Foundation
import GRDB
import LocalStorage
import Replica
import ReplicaPresentation
import ReplicaTestSupport
import StoreSupport
import SystemTestSupport
import Testing

@Suite("Query tables")
struct QueryTableTests {
    /// The child rows (phones, e-mails, tags of contacts, tags of notes) exactly as the state's
    /// elements: rows are kept in step element by element (schema 0004), through local edits,
    /// concurrent edits arriving by pull, and imports.
    @Test(
        "child rows equal the state's elements after random edits on two syncing replicas",
        arguments: FuzzSettings.seeds(count: 4, longCount: 100, base: 0xC41D))
    func childRowsFollowState(seed: UInt64) async throws {
        print("child rows: seed \(seed) (KRALIKI_SEED=\(seed) replays)")
        let directory = TempDirectory()
        let stores = try await Self.randomlyEditedReplicas(seed: seed, in: directory)
        for store in stores {
            var expected = Set<String>()
            for (id, contact) in store.state.contacts.valueByKey {
                expected.formUnion(contact.phones.elements.map { "phone \(id.text) \($0)" })
                expected.formUnion(contact.emails.elements.map { "email \(id.text) \($0)" })
                expected.formUnion(contact.tags.elements.map { "tag \(id.text) \($0)" })
            }
            for (id, note) in store.state.notes.valueByKey {
                expected.formUnion(note.tags.elements.map { "note-tag \(id.text) \($0)" })
            }
            let (rows, contactRows, noteRows, entryRows) = try await DatabaseQueue(
                path: directory.sub(store === stores[0] ? "jana" : "petr") + "/" + LocalStore.fileName
            )
            .read { db in
                (
                    try String.fetchAll(
                        db,
                        sql: """
                            SELECT 'phone ' || contact_id || ' ' || phone FROM contact_phones
                            UNION ALL SELECT 'email ' || contact_id || ' ' || email FROM contact_emails
                            UNION ALL SELECT 'tag ' || contact_id || ' ' || tag FROM contact_tags
                            UNION ALL SELECT 'note-tag ' || note_id || ' ' || tag FROM note_tags
                            """),
                    // Each contact row: its contact's displayed values and conflict flag.
                    try String.fetchAll(
                        db,
                        sql: """
                            SELECT id || '|' || name || '|' || IFNULL(company, '-') || '|' || IFNULL(title, '-')
                                || '|' || IFNULL(address, '-') || '|' || has_conflict FROM contacts
                            """),
                    try String.fetchAll(
                        db,
                        sql: """
                            SELECT id || '|' || IFNULL(contact_id, '-') || '|' || IFNULL(call_time, '-') || '|'
                                || IFNULL(body, '-') || '|' || lifecycle FROM call_notes
                            """),
                    try String.fetchAll(
                        db,
                        sql: """
                            SELECT id || '|' || IFNULL(title, '-') || '|' || IFNULL(start_ms, '-') || '|'
                                || IFNULL(end_ms, '-') || '|' || IFNULL(status, '-') || '|' || lifecycle
                            FROM schedule_entries
                            """)
                )
            }
            #expect(rows.count == Set(rows).count, "seed \(seed): duplicate rows")
            let (extra, missing) = (Set(rows).subtracting(expected), expected.subtracting(rows))
            #expect(extra.isEmpty && missing.isEmpty, "seed \(seed): rows \(extra) extra, \(missing) missing")
            let expectedRows = store.state.contacts.valueByKey.map { id, c in
                let conflict =
                    c.name.hasConflict || c.company.hasConflict || c.title.hasConflict || c.owner.hasConflict
                    || c.status.hasConflict || c.address.hasConflict || c.lifecycle.hasConflict
                return
                    "\(id.text)|\(c.name.value ?? "")|\(c.company.value ?? "-")|\(c.title.value ?? "-")|"
                    + "\(c.address.value ?? "-")|\(conflict ? 1 : 0)"
            }
            #expect(Set(contactRows) == Set(expectedRows), "seed \(seed): contact rows differ from the state")
            func lifecycle(_ value: Lifecycle?) -> String {
                switch value {
                case .deleted?: "deleted"
                case .merged?: "merged"
                case .active?, nil: "active"
                }
            }
            let expectedNotes = store.state.notes.valueByKey.map { id, n in
                "\(id.text)|\(n.contact.value?.id?.text ?? "-")|\(n.callTime.value.map(String.init) ?? "-")|"
                    + "\(n.body.value ?? "-")|\(lifecycle(n.lifecycle.value))"
            }
            #expect(Set(noteRows) == Set(expectedNotes), "seed \(seed): note rows differ from the state")
            let expectedEntries = store.state.schedule.valueByKey.map { id, e in
                let interval = e.interval.value
                return "\(id.text)|\(e.title.value ?? "-")|\(interval.map { String($0.start) } ?? "-")|"
                    + "\(interval.map { String($0.end) } ?? "-")|\(e.status.value?.rawValue ?? "-")|"
                    + lifecycle(e.lifecycle.value)
            }
            #expect(Set(entryRows) == Set(expectedEntries), "seed \(seed): schedule rows differ from the state")
            #expect(!noteRows.isEmpty && !entryRows.isEmpty, "seed \(seed): no notes or entries to compare")
        }
        #expect(stores[0].state == stores[1].state, "seed \(seed): replicas differ")
    }

    /// Two replicas of one tenant after 120 random steps — contact edits of every kind, notes and
    /// schedule entries added, edited, moved and deleted, syncs in between — synced to agree.
    static func randomlyEditedReplicas(seed: UInt64, in directory: TempDirectory) async throws -> [LocalStore] {
        var rng = SeededRandom(seed: seed)
        let stores = try [
            LocalStore.create(in: directory.sub("jana"), identity: StoreTests.jana),
            LocalStore.create(
                in: directory.sub("petr"),
                identity: ReplicaIdentity(replica: ReplicaID(0xB2), user: "petr", tenant: "acme")),
        ]
        let transport = InProcessTransport(ledger: TenantLedger(epoch: ServerEpoch(rawValue: 1)))
        let phones = ["601111111", "602222222", "603333333"]
        let emails = ["a@example.cz", "b@example.cz"]
        let tags = ["vip", "lead", "cold"]
        try stores[0].importContacts(
            (0..<5).map { ContactDraft(name: "C\($0)", phones: [phones[$0 % 3]], tags: [tags[$0 % 3]]) },
            wall: StoreTests.wall)
        var wall = StoreTests.wall
        for step in 0..<120 {
            wall += 1
            let store = stores[rng.int(0...1)]
            if rng.chance(0.3) {
                _ = try await SyncEngine(store: store, transport: transport, wall: { wall }).sync()
                continue
            }
            let contacts = store.state.contacts.sortedKeys
            guard let id = contacts.isEmpty ? nil : rng.pick(contacts) else { continue }
            if rng.chance(0.06) {
                _ = try? store.write(wall: wall) { s, c throws(ValidationError) in
                    rng.chance(0.6) ? try s.delete(.contact, id, c) : try s.restore(.contact, id, c)
                }
                continue
            }
            if rng.chance(0.2) {
                let tag = rng.pick(tags)
                _ = try? store.write(wall: wall) { s, c throws(ValidationError) in
                    try s.addNote(NoteDraft(contact: id, text: "n\(step)", tags: [tag]), c)
                }
                continue
            }
            // Notes and schedule entries change too: edits that keep their indexed columns
            // (a note's contact and call time, an entry's start), which a pull writes with a
            // narrower statement, and ones that move them.
            if rng.chance(0.25) {
                let notes = store.state.notes.sortedKeys
                let entries = store.state.schedule.sortedKeys
                let start = Int64(wall) + Int64(rng.int(0...5)) * 3_600_000
                _ = try? store.write(wall: wall) { s, c throws(ValidationError) in
                    switch rng.int(0...4) {
                    case 0 where !notes.isEmpty: try s.editNote(rng.pick(notes), text: "edited \(step)", c)
                    case 1 where !notes.isEmpty: try s.delete(.note, rng.pick(notes), c)
                    case 2 where !entries.isEmpty:
                        try s.moveScheduleEntry(
                            rng.pick(entries), to: Interval(start: start, end: start + 1_800_000, timeZone: "UTC"), c)
                    case 3 where !entries.isEmpty:
                        try s.setScheduleStatus(rng.pick(entries), rng.pick([.done, .cancelled, .planned]), c)
                    default:
                        try s.addScheduleEntry(
                            ScheduleDraft(
                                title: "s\(step)", start: start, end: start + 900_000,
                                assignees: rng.chance(0.7) ? [rng.pick(["jana", "petr"])] : [], contact: id), c)
                    }
                }
                continue
            }
            var edit = ContactEdit()
            if rng.chance(0.5) { edit.addPhones = [rng.pick(phones)] } else { edit.removePhones = [rng.pick(phones)] }
            if rng.chance(0.5) { edit.addEmails = [rng.pick(emails)] } else { edit.removeEmails = [rng.pick(emails)] }
            if rng.chance(0.5) { edit.addTags = [rng.pick(tags)] } else { edit.removeTags = [rng.pick(tags)] }
            // Columns of the contact row too: ones an index holds (name, company) and ones none
            // does (title, address), which a pull writes with a narrower statement.
            if rng.chance(0.3) { edit.title = rng.pick(["CEO", "CFO", "Sales lead"]) }
            if rng.chance(0.2) { edit.name = rng.pick(["Anna", "Beata", "Cyril"]) }
            if rng.chance(0.15) { edit.company = rng.pick(["Acme", "Beta"]) }
            if rng.chance(0.15) { edit.address = rng.pick(["Praha", "Brno"]) }
            _ = try? store.write(wall: wall) { s, c throws(ValidationError) in try s.editContact(id, edit, c) }
        }
        for store in stores + stores {
            _ = try await SyncEngine(store: store, transport: transport, wall: { wall }).sync()
        }
        return stores
    }

    /// What `replica-cli` shows without loading the whole state (``ReplicaReader``) is what the
    /// whole state says: every entity, every ID and prefix the CLI accepts, the schedule in any
    /// window for any assignee.
    @Test(
        "the reader answers as the whole state does: entities, IDs and prefixes, the schedule",
        arguments: FuzzSettings.seeds(count: 3, longCount: 60, base: 0x2EAD))
    func readerAnswersAsTheState(seed: UInt64) async throws {
        print("reader: seed \(seed) (KRALIKI_SEED=\(seed) replays)")
        let directory = TempDirectory()
        let stores = try await Self.randomlyEditedReplicas(seed: seed, in: directory)
        var rng = SeededRandom(seed: seed &+ 1)
        var checked = (ids: 0, prefixes: 0, ambiguous: 0, deleted: 0, windows: 0, entries: 0)
        for store in stores {
            // A reader of its own, as a command opens it.
            let reader = try ReplicaReader.open(in: (store.path as NSString).deletingLastPathComponent)
            let state = store.state
            let ids = state.contacts.sortedKeys + state.notes.sortedKeys + state.schedule.sortedKeys
            #expect(try reader.state(of: ids) == state, "seed \(seed): the entities read differ from the state")
            // Many IDs are read by a scan of the kinds' rows, not a lookup each: the same answer.
            let some = ids.filter { _ in rng.chance(0.5) }
            #expect(
                try reader.state(of: some, scanningAbove: 0) == reader.state(of: some, scanningAbove: .max),
                "seed \(seed): scanning and looking up read different entities")
            #expect(try reader.state(of: ids, scanningAbove: 0) == state)
            #expect(try reader.state(of: ids, kinds: [.note]).contacts.sortedKeys.isEmpty)
            let kindSets: [[EntityKind]] = [
                [.contact], [.note], [.schedule], [.contact, .schedule], EntityKind.allCases,
            ]
            var texts = ["", "zzzzzz", "01a2", EntityID(time: rng.next(), replica: ReplicaID(rng.next())).text]
            for id in ids {
                texts += [id.text, id.text.uppercased(), String(id.text.prefix(rng.int(6...31)))]
            }
            for text in texts {
                for kinds in kindSets {
                    let expected = state.resolveID(text, kinds: kinds)
                    #expect(
                        try reader.resolveID(text, kinds: kinds) == expected,
                        "seed \(seed): \(text) among \(kinds) resolves differently")
                    if text.count < 32 && text.count >= 6 {
                        checked.prefixes += 1
                        if expected == nil { checked.ambiguous += 1 }
                    }
                }
                checked.ids += 1
            }
            checked.deleted += state.contacts.valueByKey.filter { $0.value.exists && !$0.value.isActive }.count
            let times = state.schedule.valueByKey.compactMap { $0.value.interval.value?.start }
            for _ in 0..<30 {
                let from = (times.isEmpty ? 0 : rng.pick(times)) + Int64(rng.int(-3...3)) * 900_000
                let window: (Int64, Int64) =
                    rng.chance(0.15) ? (.min, .max) : (from, from + Int64(rng.int(1...8)) * 3_600_000)
                let assignee = rng.pick([nil, "jana", "petr", "nobody"])
                let expected = state.scheduleViews(from: window.0, to: window.1, assignee: assignee)
                #expect(
                    try reader.scheduleState(from: window.0, to: window.1, assignee: assignee)
                        .scheduleViews(from: window.0, to: window.1, assignee: assignee) == expected,
                    "seed \(seed): the schedule from \(window.0) to \(window.1) for \(assignee ?? "all") differs")
                checked.windows += 1
                checked.entries += expected.count
            }
        }
        print("reader: seed \(seed) checked \(checked)")
        // The checks saw what they are for: prefixes that resolve and ones that do not (ambiguous),
        // windows holding entries. (Deleted contacts, printed, occur in most seeds.)
        #expect(checked.prefixes > checked.ambiguous && checked.ambiguous > 0 && checked.entries > 0)
    }

    @Test("query rows follow edits, deletions and pulled changes")
    func rowsFollowChanges() async throws {
        let directory = TempDirectory()
        let jana = try LocalStore.create(in: directory.sub("jana"), identity: StoreTests.jana)
        let petr = try LocalStore.create(
            in: directory.sub("petr"), identity: ReplicaIdentity(replica: ReplicaID(0xB2), user: "petr", tenant: "acme")
        )
        let id = try jana.write(wall: StoreTests.wall) { s, c throws(ValidationError) in
            try s.createContact(
                ContactDraft(name: "Jana", phones: ["601111111"], tags: ["lead"], customFields: ["crm": "1"]), c)
        }.contacts.sortedKeys[0]
        var edit = ContactEdit()
        edit.removePhones = ["601111111"]
        edit.addPhones = ["602222222"]
        edit.addTags = ["vip"]
        edit.customFields = ["crm": ""]
        try jana.write(wall: StoreTests.wall + 1) { s, c throws(ValidationError) in try s.editContact(id, edit, c) }
        #expect(try jana.reader.contacts(search: "601111111").isEmpty)
        #expect(try jana.reader.contacts(search: "602 222 222").map(\.id) == [id.text])
        #expect(try jana.reader.contacts(tag: "vip").count == 1 && jana.reader.contacts(tag: "lead").count == 1)

        let transport = InProcessTransport(ledger: TenantLedger(epoch: ServerEpoch(rawValue: 1)))
        _ = try await SyncEngine(store: jana, transport: transport, wall: { StoreTests.wall }).sync()
        _ = try await SyncEngine(store: petr, transport: transport, wall: { StoreTests.wall }).sync()
        #expect(try petr.reader.contacts(search: "602222222").count == 1)
        #expect(try petr.reader.contacts(search: "601111111").isEmpty)
        var rename = ContactEdit()
        rename.name = "Jana Nováková"
        rename.removeTags = ["lead"]
        try petr.write(wall: StoreTests.wall + 2) { s, c throws(ValidationError) in try s.editContact(id, rename, c) }
        _ = try await SyncEngine(store: petr, transport: transport, wall: { StoreTests.wall }).sync()
        _ = try await SyncEngine(store: jana, transport: transport, wall: { StoreTests.wall }).sync()
        #expect(try jana.reader.contacts(search: "nováková").count == 1)
        #expect(try jana.reader.contacts(tag: "lead").isEmpty)
        try jana.write(wall: StoreTests.wall + 3) { s, c throws(ValidationError) in try s.delete(.contact, id, c) }
        #expect(try jana.reader.contacts().isEmpty)
        #expect(try jana.reader.contacts(includeDeleted: true).map(\.lifecycle) == ["deleted"])
    }
}
