import CRDT
import DomainTestSupport
import Foundation
import GRDB
import Testing

@testable import Replica

/// The store's per-entity lookups must use an index: a full scan is invisible in a test with ten
/// rows and costs seconds with 100,000 contacts (the history query scanned the whole audit
/// trail until session 5, because it filtered on the second column of `audit_by_entity` only).
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
        #expect(history.contains("USING INDEX audit_by_entity"), "\(history)")
        let notes = try plan(ReplicaReader.notesSQL, store)
        #expect(notes.contains("USING INDEX call_notes_by_contact_time"), "\(notes)")
        for (sql, detail) in [(ReplicaReader.historySQL, history), (ReplicaReader.notesSQL, notes)] {
            #expect(!detail.contains("SCAN"), "\(sql): \(detail)")
        }
    }
}
