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

@Suite("Local store")
struct StoreTests {
    static let wall: UInt64 = 1_764_000_000_000
    static let jana = ReplicaIdentity(replica: ReplicaID(0xA1), user: "jana", tenant: "acme")

    func create(_ directory: TempDirectory, durability: Durability = .full) throws -> LocalStore {
        try LocalStore.create(in: directory.path, identity: Self.jana, options: StoreOptions(durability: durability))
    }

    @Test("writes survive reopening: state, query tables, outbox, clock", arguments: Durability.allCases)
    func reopen(durability: Durability) throws {
        let directory = TempDirectory()
        var lastStamp: HLC
        let contact: EntityID
        do {
            let store = try create(directory, durability: durability)
            contact = try store.write(wall: Self.wall) { s, c throws(ValidationError) in
                try s.createContact(
                    ContactDraft(
                        name: "Jana Nováková", company: "Acme", phones: ["601 234 567"], emails: ["Jana@Acme.cz"],
                        tags: ["vip"]), c)
            }.contacts.sortedKeys[0]
            try store.write(wall: Self.wall + 1) { s, c throws(ValidationError) in
                try s.addNote(
                    NoteDraft(contact: contact, text: "Called, wants a quote", callTime: 1_764_000_000_000), c)
            }
            try store.write(wall: Self.wall + 2) { s, c throws(ValidationError) in
                try s.addScheduleEntry(
                    ScheduleDraft(title: "Visit", start: 1_764_061_200_000, end: 1_764_064_800_000, contact: contact), c
                )
            }
            lastStamp = store.clock.last
        }
        let store = try LocalStore.open(in: directory.path, options: StoreOptions(durability: durability))
        #expect(store.identity == Self.jana)
        #expect(store.state.contacts.count == 1 && store.state.notes.count == 1 && store.state.schedule.count == 1)
        #expect(try store.outboxCount() == 3)
        #expect(store.clock.last == lastStamp)
        // The wall clock went back an hour: the next stamp still goes forward.
        let next = try store.write(wall: Self.wall - 3_600_000) { s, c throws(ValidationError) in
            var edit = ContactEdit()
            edit.title = "CEO"
            return try s.editContact(contact, edit, c)
        }
        #expect(next.contacts[contact]!.title.stamp! > lastStamp)

        #expect(try store.reader.contacts(search: "nová").map(\.name) == ["Jana Nováková"])
        // Case and diacritics do not matter (SQLite's LIKE alone folds only ASCII).
        #expect(try store.reader.contacts(search: "NOVAKOVA").map(\.name) == ["Jana Nováková"])
        #expect(try store.reader.contacts(search: "NOVÁKOVÁ").map(\.name) == ["Jana Nováková"])
        #expect(try store.reader.contacts(search: "a%").isEmpty)  // LIKE wildcards are literal
        #expect(try store.reader.contacts(search: "+420 601 234 567").count == 1)
        #expect(try store.reader.contacts(search: "jana@acme.cz").count == 1)
        #expect(try store.reader.contacts(tag: "vip").count == 1)
        #expect(try store.reader.contacts(owner: "jana").count == 1)
        #expect(try store.reader.contacts(search: "nobody").isEmpty)
        #expect(try store.reader.notes(of: contact).map(\.body) == ["Called, wants a quote"])
        #expect(
            try store.reader.schedule(assignee: "jana", from: 1_764_028_800_000, to: 1_764_115_200_000).map(\.title)
                == [
                    "Visit"
                ])
        #expect(try store.reader.schedule(assignee: "petr", from: 1_764_028_800_000, to: 1_764_115_200_000).isEmpty)
        #expect(try store.integrityCheck() == ["ok"])
    }

    @Test("a refused command changes neither the file nor memory")
    func refusedWrite() throws {
        let directory = TempDirectory()
        let store = try create(directory)
        try store.write(wall: Self.wall) { s, c throws(ValidationError) in
            try s.createContact(ContactDraft(name: "A"), c)
        }
        let before = store.state
        do {
            try store.write(wall: Self.wall + 1) { s, c throws(ValidationError) in
                try s.createContact(ContactDraft(name: "B", emails: ["not-an-address"]), c)
            }
            Issue.record("accepted an invalid e-mail")
        } catch {
            guard case .invalid(let validation) = error else {
                Issue.record("expected a validation error, got \(error)")
                return
            }
            #expect(validation.field == "email")
        }
        #expect(store.state == before, "memory changed")
        #expect(try store.outboxCount() == 1)
        #expect(try LocalStore.open(in: directory.path).state == before, "the file changed")
    }

    @Test("the store refuses to overwrite a replica, and says when there is none")
    func createAndOpenErrors() throws {
        let directory = TempDirectory()
        _ = try create(directory)
        #expect(throws: StoreError.self) { try LocalStore.create(in: directory.path, identity: Self.jana) }
        do {
            _ = try LocalStore.open(in: directory.sub("elsewhere"))
        } catch {
            #expect(error.code == .notInitialized)
            #expect(error.message.contains("replica-cli init"))
        }
    }

    @Test("the embedded migrations are exactly the files in schema/")
    func schemaMatchesFiles() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let files = try FileManager.default.contentsOfDirectory(atPath: root.path + "/schema").filter {
            $0.hasSuffix(".sql")
        }.sorted()
        let embedded = try String(
            contentsOfFile: root.path + "/Sources/LocalStorage/Store/Schema.swift", encoding: .utf8)
        #expect(
            files == [
                "0001_initial.sql", "0002_audit_and_conflicts.sql", "0003_contact_listing_index.sql",
                "0004_child_rows_by_element.sql", "0005_state_in_entity_rows.sql",
                "0006_audit_keyed_by_entity.sql",
            ])
        for file in files {
            let sql = try String(contentsOfFile: root.path + "/schema/" + file, encoding: .utf8)
            #expect(
                embedded.contains("\"\(file)\",\n        #\"\"\"\n\(sql)\"\"\"#"),
                "\(file) differs; run scripts/embed-schema.py")
        }
    }

    @Test("a store of the previous schema is migrated, keeping its data")
    func migration() throws {
        let directory = TempDirectory()
        do {
            let store = try create(directory)
            try store.write(wall: Self.wall) { s, c throws(ValidationError) in
                try s.createContact(ContactDraft(name: "Old", phones: ["601111111"], tags: ["lead"]), c)
            }
        }
        // Turn the file back into schema 1: undo what schemas 2 to 6 did.
        let path = directory.sub(LocalStore.fileName)
        let queue = try DatabaseQueue(path: path)
        try queue.write { db in
            try db.execute(sql: Self.undoSchema6)
            try db.execute(sql: Self.undoSchema5)
            try db.execute(
                sql: """
                    DROP TABLE audit; DROP TABLE conflicts; DROP INDEX contacts_listing;
                    CREATE INDEX contacts_by_name ON contacts (name COLLATE NOCASE);
                    CREATE INDEX contact_phones_by_contact ON contact_phones (contact_id);
                    CREATE INDEX contact_emails_by_contact ON contact_emails (contact_id);
                    CREATE INDEX contact_tags_by_contact ON contact_tags (contact_id);
                    CREATE INDEX note_tags_by_note ON note_tags (note_id);
                    PRAGMA user_version = 1
                    """)
        }
        try queue.close()
        let store = try LocalStore.open(in: directory.path)
        #expect(store.state.contacts.count == 1)
        try store.write(wall: Self.wall + 1) { s, c throws(ValidationError) in
            try s.createContact(ContactDraft(name: "New"), c)
        }
        let version = try DatabaseQueue(path: path).read { db in try Int.fetchOne(db, sql: "PRAGMA user_version") }
        #expect(version == 6)
        let indexes = try DatabaseQueue(path: path).read { db in
            try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")
        }
        #expect(indexes.contains("contacts_listing") && !indexes.contains("contacts_by_name"))
        #expect(!indexes.contains { $0.hasSuffix("_by_contact") || $0 == "note_tags_by_note" }, "\(indexes)")
        #expect(try store.reader.contacts().map(\.name) == ["New", "Old"])
        // Rows written before the migration follow edits made after it.
        let old = try #require(try store.reader.contacts(search: "601111111").first.flatMap { EntityID(text: $0.id) })
        var edit = ContactEdit()
        edit.removePhones = ["601111111"]
        edit.addPhones = ["602222222"]
        edit.removeTags = ["lead"]
        try store.write(wall: Self.wall + 2) { s, c throws(ValidationError) in try s.editContact(old, edit, c) }
        #expect(try store.reader.contacts(search: "601111111").isEmpty)
        #expect(try store.reader.contacts(search: "602222222").map(\.name) == ["Old"])
        #expect(try store.reader.contacts(tag: "lead").isEmpty)
    }

    /// SQL turning a schema 6 file back into schema 5: the trail a rowid table with its index,
    /// numbered by AUTOINCREMENT.
    static let undoSchema6 = """
        CREATE TABLE audit_rowid (
            seq INTEGER PRIMARY KEY AUTOINCREMENT, at_hlc TEXT NOT NULL, user TEXT NOT NULL, device TEXT NOT NULL,
            action TEXT NOT NULL, entity_kind TEXT NOT NULL, entity_id TEXT NOT NULL
        ) STRICT;
        INSERT INTO audit_rowid SELECT seq, at_hlc, user, device, action, entity_kind, entity_id FROM audit;
        DROP TABLE audit;
        ALTER TABLE audit_rowid RENAME TO audit;
        CREATE INDEX audit_by_entity ON audit (entity_kind, entity_id);
        DELETE FROM store_meta WHERE key = 'audit_seq';
        PRAGMA user_version = 5
        """

    @Test("schema 5 to 6 keys the audit trail by entity, keeping every row, its order and the counter")
    func auditKeyedByEntity() throws {
        let directory = TempDirectory()
        let first: EntityID
        let second: EntityID
        do {
            let store = try create(directory)
            first = try store.write(wall: Self.wall) { s, c throws(ValidationError) in
                try s.createContact(ContactDraft(name: "Jana"), c)
            }.contacts.sortedKeys[0]
            second = try store.write(wall: Self.wall + 1) { s, c throws(ValidationError) in
                try s.createContact(ContactDraft(name: "Petr"), c)
            }.contacts.sortedKeys[0]
            for (offset, id) in [first, second, first].enumerated() {
                try store.write(wall: Self.wall + 2 + UInt64(offset)) { s, c throws(ValidationError) in
                    var edit = ContactEdit()
                    edit.title = "Title \(offset)"
                    return try s.editContact(id, edit, c)
                }
            }
        }
        let path = directory.sub(LocalStore.fileName)
        let trailSQL = "SELECT seq, entity_id, at_hlc, user, device, action FROM audit ORDER BY seq"
        let before: [Row]
        do {
            let queue = try DatabaseQueue(path: path)
            before = try queue.write { db in
                try db.execute(sql: Self.undoSchema6)
                // AUTOINCREMENT gave out numbers past the last row (rows since lost, say): the
                // counter continues past them, as it would have.
                try db.execute(sql: "UPDATE sqlite_sequence SET seq = seq + 10 WHERE name = 'audit'")
                return try Row.fetchAll(db, sql: trailSQL)
            }
            try queue.close()
        }
        #expect(before.count == 5)
        let store = try LocalStore.open(in: directory.path)
        let (version, table, indexes, counter, after) = try DatabaseQueue(path: path).read { db in
            (
                try Int.fetchOne(db, sql: "PRAGMA user_version"),
                try String.fetchOne(db, sql: "SELECT sql FROM sqlite_master WHERE name = 'audit'") ?? "",
                try String.fetchAll(
                    db, sql: "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'audit'"),
                try String.fetchOne(db, sql: "SELECT value FROM store_meta WHERE key = 'audit_seq'"),
                try Row.fetchAll(db, sql: trailSQL)
            )
        }
        #expect(version == 6 && table.contains("WITHOUT ROWID"), "\(table)")
        #expect(indexes.allSatisfy { $0.hasPrefix("sqlite_autoindex") }, "\(indexes)")
        #expect(after == before)
        #expect(counter == "15")
        #expect(try store.reader.history(of: first)?.changes.map(\.action) == ["write", "write", "write"])
        try store.write(wall: Self.wall + 10) { s, c throws(ValidationError) in
            var edit = ContactEdit()
            edit.title = "After"
            return try s.editContact(second, edit, c)
        }
        let newest = try DatabaseQueue(path: path).read { db in
            try Row.fetchOne(db, sql: "SELECT seq, entity_id FROM audit ORDER BY seq DESC LIMIT 1")
        }
        #expect(newest?["seq"] == 16 as Int64 && newest?["entity_id"] == second.text)
        #expect(try store.reader.history(of: second)?.changes.count == 3)
    }

    /// SQL turning a schema 5 file back into schema 4: the states in their own table again.
    static let undoSchema5 = """
        DROP VIEW entity_state;
        CREATE TABLE entity_state (
            kind TEXT NOT NULL, id TEXT NOT NULL, state BLOB NOT NULL, PRIMARY KEY (kind, id)
        ) STRICT, WITHOUT ROWID;
        INSERT INTO entity_state
            SELECT 'contact', id, state FROM contacts UNION ALL SELECT 'note', id, state FROM call_notes
            UNION ALL SELECT 'schedule', id, state FROM schedule_entries;
        ALTER TABLE contacts DROP COLUMN state;
        ALTER TABLE call_notes DROP COLUMN state;
        ALTER TABLE schedule_entries DROP COLUMN state;
        PRAGMA user_version = 4
        """

    @Test("schema 4 to 5 moves every entity's state into its row, and keeps a state whose row is missing")
    func stateMovesIntoRows() throws {
        let directory = TempDirectory()
        let before: TenantState
        let orphan: EntityID
        do {
            let store = try create(directory)
            let contact = try store.write(wall: Self.wall) { s, c throws(ValidationError) in
                try s.createContact(ContactDraft(name: "Jana", phones: ["601111111"]), c)
            }.contacts.sortedKeys[0]
            orphan = try store.write(wall: Self.wall + 1) { s, c throws(ValidationError) in
                try s.createContact(ContactDraft(name: "Orphan", emails: ["o@acme.cz"]), c)
            }.contacts.sortedKeys[0]
            try store.write(wall: Self.wall + 2) { s, c throws(ValidationError) in
                try s.addNote(NoteDraft(contact: contact, text: "Called", callTime: 1_764_000_000_000), c)
            }
            try store.write(wall: Self.wall + 3) { s, c throws(ValidationError) in
                try s.addScheduleEntry(
                    ScheduleDraft(title: "Visit", start: 1_764_061_200_000, end: 1_764_064_800_000), c)
            }
            before = store.state
        }
        let path = directory.sub(LocalStore.fileName)
        do {
            let queue = try DatabaseQueue(path: path)
            // A state without its contact row: the store never leaves one, but the migration must
            // not drop a state it finds that way.
            try queue.write { db in
                try db.execute(sql: Self.undoSchema6)
                try db.execute(sql: Self.undoSchema5)
                try db.execute(sql: "DELETE FROM contacts WHERE id = ?", arguments: [orphan.text])
            }
            try queue.close()
        }
        let store = try LocalStore.open(in: directory.path)
        #expect(store.state == before)
        #expect(store.state.contacts.count == 2 && store.state.notes.count == 1 && store.state.schedule.count == 1)
        let (version, stateType) = try DatabaseQueue(path: path).read { db in
            (
                try Int.fetchOne(db, sql: "PRAGMA user_version"),
                try String.fetchOne(db, sql: "SELECT type FROM sqlite_master WHERE name = 'entity_state'")
            )
        }
        #expect(version == 6 && stateType == "view")
        #expect(try store.reader.state(of: [orphan]).contacts.count == 1)
        // The row the migration made for the kept state was rebuilt from it when the store
        // opened, and the migration's marker is gone.
        #expect(try store.reader.contacts().map(\.name) == ["Jana", "Orphan"])
        #expect(try store.reader.contacts(search: "o@acme.cz").map(\.name) == ["Orphan"])
        let (standIns, marker) = try DatabaseQueue(path: path).read { db in
            (
                try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM contacts WHERE updated_hlc = ''"),
                try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM store_meta WHERE key = 'rows_to_rebuild'")
            )
        }
        #expect(standIns == 0 && marker == 0)
        try store.write(wall: Self.wall + 4) { s, c throws(ValidationError) in
            var edit = ContactEdit()
            edit.title = "Buyer"
            return try s.editContact(orphan, edit, c)
        }
        let reopened = try LocalStore.open(in: directory.path)
        #expect(reopened.state == store.state)
        #expect(reopened.state.contacts[orphan]?.title.value == "Buyer")
    }

    @Test("a store written by a newer version is refused, untouched, with a clear message")
    func newerSchemaRefused() throws {
        let directory = TempDirectory()
        _ = try create(directory)
        let path = directory.sub(LocalStore.fileName)
        try DatabaseQueue(path: path).write { db in try db.execute(sql: "PRAGMA user_version = 7") }
        do {
            _ = try LocalStore.open(in: directory.path)
            Issue.record("opened a newer store")
        } catch {
            #expect(error.code == .newerSchema)
            #expect(error.message.contains("newer version of Kraliki Sync (schema 7; this build knows up to 6)"))
            #expect(error.message.contains("upgrade replica-cli"))
        }
        #expect(try DatabaseQueue(path: path).read { db in try Int.fetchOne(db, sql: "PRAGMA user_version") } == 7)
    }

    /// What a kill in the middle of a transaction in rollback-journal mode leaves (taking a
    /// bootstrap image switches the file to it): a hot journal. The image kill test met it once
    /// once: the read-only check on open could not roll it back, and the store was
    /// reported damaged.
    @Test("a hot rollback journal left by a killed process is rolled back on open, not reported as damage")
    func hotJournalRolledBack() throws {
        let directory = TempDirectory()
        do {
            let store = try create(directory)
            for index in 0..<50 {
                try store.write(wall: Self.wall + UInt64(index)) { s, c throws(ValidationError) in
                    try s.createContact(ContactDraft(name: "Contact \(index)"), c)
                }
            }
        }
        let path = directory.sub(LocalStore.fileName)
        let crashed = TempDirectory()
        let copy = crashed.sub(LocalStore.fileName)
        let crashedAgain = TempDirectory()
        try DatabaseQueue(path: path).writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA journal_mode = DELETE")
            try db.execute(sql: "PRAGMA cache_size = 1")  // the change reaches the file before the commit
            try db.execute(sql: "BEGIN IMMEDIATE")
            try db.execute(sql: "UPDATE contacts SET name = 'half-written'")
            // The files as a SIGKILL now would leave them (twice: for opening, and for repair).
            for target in [copy, crashedAgain.sub(LocalStore.fileName)] {
                try FileManager.default.copyItem(atPath: path, toPath: target)
                try FileManager.default.copyItem(atPath: path + "-journal", toPath: target + "-journal")
            }
            try db.execute(sql: "ROLLBACK")
        }
        let reopened = try LocalStore.open(in: crashed.path)
        #expect(try reopened.reader.contacts().count == 50)
        #expect(
            try reopened.reader.contacts(search: "half-written").isEmpty, "the interrupted transaction was not undone")
        #expect(!FileManager.default.fileExists(atPath: copy + "-journal"))
        // `repair` checks as opening does: the journal is rolled back, and there is nothing to repair.
        do {
            _ = try StoreRepair.repair(in: crashedAgain.path, wall: Self.wall)
            Issue.record("repaired a replica that only had a hot journal")
        } catch {
            #expect(error.message.contains("not damaged"), "\(error)")
        }
        #expect(try LocalStore.open(in: crashedAgain.path).reader.contacts().count == 50)
    }

    @Test("a damaged file is detected on open and reported with the recovery path, never overwritten")
    func corruptionDetected() throws {
        let directory = TempDirectory()
        do {
            let store = try create(directory)
            for index in 0..<300 {
                try store.write(wall: Self.wall + UInt64(index)) { s, c throws(ValidationError) in
                    try s.createContact(
                        ContactDraft(name: "Contact \(index)", company: String(repeating: "x", count: 150)), c)
                }
            }
        }
        let path = directory.sub(LocalStore.fileName)
        // Fold the WAL into the file, then scribble over a page in the middle of it.
        try DatabaseQueue(path: path).writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE)")
        }
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: path))
        let size = try handle.seekToEnd()
        try handle.seek(toOffset: size / 2)
        handle.write(Data(repeating: 0xA5, count: 8_192))
        try handle.close()
        let damaged = try Data(contentsOf: URL(fileURLWithPath: path))
        do {
            _ = try LocalStore.open(in: directory.path)
            Issue.record("opened a damaged store")
        } catch {
            #expect(error.code == .corrupt)
            #expect(error.message.contains("outbox"))
        }
        let after = try Data(contentsOf: URL(fileURLWithPath: path))
        let changed = zip(after, damaged).enumerated().filter { $0.element.0 != $0.element.1 }.map(\.offset)
        #expect(
            after == damaged,
            "the damaged file was modified: \(after.count) vs \(damaged.count) bytes, first changes at \(changed.prefix(8))"
        )

        // Not a database at all.
        let other = TempDirectory()
        try Data("this is not sqlite".utf8).write(to: URL(fileURLWithPath: other.sub(LocalStore.fileName)))
        #expect(throws: StoreError.self) { try LocalStore.open(in: other.path) }
    }
}
