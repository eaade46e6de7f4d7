import CRDT
import CRDTTestSupport
import Domain
import DomainTestSupport
import Foundation
import GRDB
import GRDBSQLite
import StoreSupport
import SystemTestSupport
import Testing

@testable import LocalStorage
@testable import Replica

/// The hot paths bind statement parameters through SQLite's C API, texts and blobs from a scratch
/// buffer that lives only for the call (`SQLITE_STATIC`). What SQLite stores must be
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

    /// The store binds entity IDs and stamps as their texts written straight into the scratch
    /// buffer, without making a string: the stored text must be exactly `EntityID.text` and
    /// `HLC.text` (rows are looked up and ordered by them), and a missing stamp an empty text.
    @Test("entity IDs and stamps are stored as their texts", arguments: 0..<5 as Range<UInt64>)
    func idsAndStampsAsText(seed: UInt64) throws {
        var rng = SeededRandom(seed: seed)
        let directory = TempDirectory()
        let queue = try DatabaseQueue(path: directory.path + "/texts.sqlite")
        var ids = [EntityID(time: 0, replica: ReplicaID(0)), EntityID(time: .max, replica: ReplicaID(.max))]
        var stamps = [
            HLC(physical: 0, logical: 0, replica: ReplicaID(0)),
            HLC(physical: HLC.maxPhysical, logical: HLC.maxLogical, replica: ReplicaID(.max)),
        ]
        for _ in 0..<200 {
            ids.append(EntityID(time: rng.next(), replica: ReplicaID(rng.next())))
            stamps.append(
                HLC(
                    physical: rng.next() % (HLC.maxPhysical + 1), logical: UInt16(truncatingIfNeeded: rng.next()),
                    replica: ReplicaID(rng.next())))
        }
        let stored = try queue.write { db -> [Row] in
            try db.execute(sql: "CREATE TABLE t (n INTEGER PRIMARY KEY, id TEXT, at TEXT, newest TEXT, none TEXT)")
            let insert = try db.cachedStatement(sql: "INSERT INTO t (id, at, newest, none) VALUES (?, ?, ?, ?)")
            for (id, stamp) in zip(ids, stamps) {
                try insert.run(db, id, stamp, StampText(stamp: stamp), StampText(stamp: nil))
            }
            return try Row.fetchAll(db, sql: "SELECT id, at, newest, none, typeof(none) FROM t ORDER BY n")
        }
        #expect(stored.count == ids.count)
        for (row, (id, stamp)) in zip(stored, zip(ids, stamps)) {
            #expect(row[0] as String == id.text, "seed \(seed)")
            #expect(row[1] as String == stamp.text, "seed \(seed)")
            #expect(row[2] as String == stamp.text, "seed \(seed)")
            #expect(row[3] as String == "" && row[4] as String == "text", "seed \(seed)")
        }
    }
}
