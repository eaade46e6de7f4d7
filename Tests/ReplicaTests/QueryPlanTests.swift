import CRDT
import CRDTTestSupport
import Domain
import DomainTestSupport
import Foundation
import GRDB
import StoreSupport
import SystemTestSupport
import Testing

@testable import LocalStorage
@testable import Replica

/// The store's per-entity lookups must use an index: a full scan is invisible in a test with ten
/// rows and costs seconds with 100,000 contacts (the history query scanned the whole audit
/// trail once, because it filtered on the second column of `audit_by_entity` only).
@Suite("Query plans")
struct QueryPlanTests {
    func plan(_ sql: String, _ store: LocalStore) throws -> String {
        try store.database.read { db in
            try Row.fetchAll(
                db, sql: "EXPLAIN QUERY PLAN " + sql,
                arguments: StatementArguments(
                    Array(repeating: "x", count: sql.filter { $0 == "?" }.count))
            ).map { $0["detail"] as String }.joined(separator: "; ")
        }
    }

    @Test("history and notes of one entity are index lookups, not scans")
    func lookupsUseIndexes() throws {
        let directory = TempDirectory()
        let store = try LocalStore.create(in: directory.path, identity: StoreTests.jana)
        let history = try plan(ReplicaReader.historySQL, store)
        // Schema 6: the trail is keyed by entity, so an entity's rows are one range of the key,
        // already in `seq` order (no sort).
        #expect(history.contains("USING PRIMARY KEY (entity_kind=? AND entity_id=?)"), "\(history)")
        #expect(!history.contains("TEMP B-TREE"), "\(history)")
        let notes = try plan(ReplicaReader.notesSQL, store)
        #expect(notes.contains("USING INDEX call_notes_by_contact_time"), "\(notes)")
        for (sql, detail) in [(ReplicaReader.historySQL, history), (ReplicaReader.notesSQL, notes)] {
            #expect(!detail.contains("SCAN"), "\(sql): \(detail)")
        }
    }

    /// Since schema 5 `entity_state` is a view over the three entity tables: a lookup through it
    /// must reach each table's primary key, not scan the table.
    @Test("state lookups by ID and by ID prefix search each table's primary key")
    func stateLookupsUseKeys() throws {
        let directory = TempDirectory()
        let store = try LocalStore.create(in: directory.path, identity: StoreTests.jana)
        for sql in [
            ReplicaReader.stateLookupSQL(kinds: EntityKind.allCases, count: 3),
            ReplicaReader.stateLookupSQL(kinds: [.contact], count: 1), ReplicaReader.stateByPrefixSQL,
        ] {
            let detail = try plan(sql, store)
            #expect(!detail.contains("SCAN"), "\(sql): \(detail)")
            #expect(detail.contains("SEARCH contacts USING PRIMARY KEY"), "\(sql): \(detail)")
        }
    }
}

/// Contact search folds names with a table for Latin scripts instead of Foundation (44 % of a
/// search's samples at 100,000 contacts): the fold must be Foundation's, whatever the text.
@Suite("Search folding")
struct SearchFoldTests {
    @Test(
        "search_fold equals Foundation's diacritic- and case-insensitive folding, in Swift and in SQL",
        arguments: FuzzSettings.seeds(count: 3, longCount: 50, base: 0xF01D))
    func foldEqualsFoundation(seed: UInt64) throws {
        print("search fold: seed \(seed) (KRALIKI_SEED=\(seed) replays)")
        var rng = SeededRandom(seed: seed)
        // Latin (the table), ASCII, combining marks, other scripts, a character Foundation
        // folds to two ("ß"), emoji.
        let ranges: [ClosedRange<UInt32>] = [
            0x20...0x7E, 0x80...0x24F, 0x80...0x24F, 0x250...0x2FF, 0x300...0x36F, 0x370...0x3FF, 0x400...0x4FF,
            0x1E00...0x1EFF, 0x4E00...0x4E20, 0x1F600...0x1F610,
        ]
        var texts = ["", "Čapek", "ČAPEK", "Nováková", "Straße", "Ångström", "e\u{301}", "İstanbul", "ŉ"]
        texts += (0x20...0x24F).compactMap { UnicodeScalar(UInt32($0)).map { String($0) } }
        for _ in 0..<2_000 {
            let count = rng.int(1...12)
            var scalars = String.UnicodeScalarView()
            for _ in 0..<count {
                let range = rng.pick(ranges)
                if let scalar = UnicodeScalar(
                    range.lowerBound + UInt32(rng.int(0...Int(range.upperBound - range.lowerBound))))
                {
                    scalars.append(scalar)
                }
            }
            texts.append(String(scalars))
        }
        let database = try DatabaseQueue()
        try database.write { db in try SearchFold.register(on: db) }
        var latinOnly = 0
        for text in texts {
            let expected = SearchFold.foundation(text)
            #expect(
                SearchFold.fold(text) == expected,
                "seed \(seed): \(text.unicodeScalars.map { String($0.value, radix: 16) })")
            let inSQL = try database.read { db in
                try String.fetchOne(db, sql: "SELECT search_fold(?)", arguments: [text])
            }
            #expect(
                inSQL == expected, "seed \(seed): in SQL, \(text.unicodeScalars.map { String($0.value, radix: 16) })")
            if text.unicodeScalars.allSatisfy({ $0.value < 0x250 }) { latinOnly += 1 }
        }
        #expect(try database.read { db in try String.fetchOne(db, sql: "SELECT search_fold(NULL)") } == nil)
        // Both paths ran: texts the table folds and texts that go to Foundation.
        #expect(latinOnly > 600 && texts.count - latinOnly > 600, "\(latinOnly) of \(texts.count) in Latin only")
    }
}
