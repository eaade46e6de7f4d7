import DomainTestSupport
import Foundation
import GRDB
import GRDBSQLite
import Testing

@testable import Replica

/// The hot paths bind statement parameters through SQLite's C API, texts and blobs from a scratch
/// buffer that lives only for the call (`SQLITE_STATIC`, session 17). What SQLite stores must be
/// exactly the values — empty, multi-byte, larger than the stack holds, NULL — and no binding may
/// point into the buffer once the call returned.
@Suite("Statement bindings")
struct BindingTests {
    @Test("texts, blobs, integers and NULLs are stored exactly, and no binding outlives the call")
    func valuesRoundTrip() throws {
        let directory = TempDirectory()
        let queue = try DatabaseQueue(path: directory.path + "/bindings.sqlite")
        // Larger than any stack buffer: the scratch buffer then comes from the heap.
        let large = String(repeating: "ř", count: 100_000)
        let largeBlob = (0..<70_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let rows: [(String, [UInt8], Int64, String?, Data)] = [
            ("", [], 0, nil, Data()),
            ("Nováková – žluťoučký kůň 🐎", [0, 1, 2, 255], -7, "", Data([9, 8])),
            (large, largeBlob, Int64.max, "x", Data(largeBlob)),
        ]
        let expanded = try queue.write { db -> String in
            try db.execute(sql: "CREATE TABLE t (n INTEGER PRIMARY KEY, a TEXT, b BLOB, c INTEGER, d TEXT, e BLOB)")
            let insert = try db.cachedStatement(sql: "INSERT INTO t (a, b, c, d, e) VALUES (?, ?, ?, ?, ?)")
            for row in rows { try insert.run(db, row.0, row.1, row.2, row.3, row.4) }
            // Every parameter is NULL again: nothing points into the freed buffer.
            return String(cString: sqlite3_expanded_sql(insert.sqliteStatement)!)
        }
        #expect(expanded == "INSERT INTO t (a, b, c, d, e) VALUES (NULL, NULL, NULL, NULL, NULL)")
        let stored = try queue.read { db in
            try Row.fetchAll(
                db, sql: "SELECT a, b, c, d, e, typeof(a), typeof(b), typeof(d), typeof(e) FROM t ORDER BY n")
        }
        #expect(stored.count == rows.count)
        for (row, expected) in zip(stored, rows) {
            #expect(row[0] as String == expected.0)
            #expect([UInt8](row[1] as Data) == expected.1)
            #expect(row[2] as Int64 == expected.2)
            #expect(row[3] as String? == expected.3)
            #expect(row[4] as Data == expected.4)
            // An empty text is a text and an empty blob a blob, not NULL.
            #expect(row[5] as String == "text")
            #expect(row[6] as String == "blob")
            #expect(row[7] as String == (expected.3 == nil ? "null" : "text"))
            #expect(row[8] as String == "blob")
        }
        // A query's parameters are bound the same way while its row is read.
        let blobs = try queue.read { db in
            try db.cachedStatement(sql: "SELECT b, e FROM t WHERE a = ? AND c = ?").firstRowBlobs(
                columns: 2, db, large, Int64.max)
        }
        #expect(blobs == [Data(largeBlob), Data(largeBlob)])
    }
}
