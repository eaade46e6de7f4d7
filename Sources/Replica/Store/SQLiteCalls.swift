import Foundation
import GRDB
import GRDBSQLite

// Statements run through SQLite's C API: for the few statements that run once per row on the
// hot paths — the replica store's row writes (`RowWriter`) and the server's ingest and pulls.
// GRDB's `execute(arguments:)` and `Row.fetchOne` build a `StatementArguments` array of boxed
// values and a `Row` per call; in the import's profile and the server ingest thread's that was
// about a tenth of the time. The statements stay GRDB's cached ones (prepared once per
// connection, finalized when it closes) and are reset after each use, so GRDB can use them
// again. Statements run this way bypass GRDB's transaction observers; none are used.

extension Statement {
    /// Runs this statement to its end (an INSERT, UPDATE or DELETE) with `parameters`, which must
    /// be exactly its parameters, in order.
    package func run<each P: SQLiteParameter>(_ db: Database, _ parameters: repeat each P) throws {
        try bindAll(db, repeat each parameters)
        defer { sqlite3_reset(sqliteStatement) }
        let code = sqlite3_step(sqliteStatement)
        guard code == SQLITE_DONE else { throw sqliteFailure(code, db, sql: sql) }
    }

    /// The first row's first `columns` columns as bytes (blobs), or nil when there is no row.
    package func firstRowBlobs<each P: SQLiteParameter>(
        columns: Int32, _ db: Database, _ parameters: repeat each P
    ) throws -> [Data]? {
        try bindAll(db, repeat each parameters)
        let handle = sqliteStatement
        defer { sqlite3_reset(handle) }
        let code = sqlite3_step(handle)
        if code == SQLITE_DONE { return nil }
        guard code == SQLITE_ROW else { throw sqliteFailure(code, db, sql: sql) }
        return (0..<columns).map { column in
            let count = Int(sqlite3_column_bytes(handle, column))
            guard count > 0, let bytes = sqlite3_column_blob(handle, column) else { return Data() }
            return Data(bytes: bytes, count: count)
        }
    }

    private func bindAll<each P: SQLiteParameter>(_ db: Database, _ parameters: repeat each P) throws {
        let handle = sqliteStatement
        sqlite3_reset(handle)
        var index: Int32 = 0
        for parameter in repeat each parameters {
            index += 1
            let code = parameter.bind(to: handle, at: index)
            guard code == SQLITE_OK else {
                sqlite3_reset(handle)
                throw sqliteFailure(code, db, sql: sql)
            }
        }
        precondition(index == sqlite3_bind_parameter_count(handle), "\(sql) takes other parameters")
    }
}

/// The error of a statement run through SQLite's C API, as GRDB would have thrown it.
package func sqliteFailure(_ code: Int32, _ db: Database, sql: String) -> DatabaseError {
    let message = db.sqliteConnection.map { String(cString: sqlite3_errmsg($0)) }
    return DatabaseError(resultCode: ResultCode(rawValue: code), message: message, sql: sql)
}

/// A value bound to a statement parameter with SQLite's C API.
package protocol SQLiteParameter {
    func bind(to statement: OpaquePointer, at index: Int32) -> Int32
}

/// SQLite copies the bound bytes (`SQLITE_TRANSIENT`), so they need not outlive the call.
let transient = unsafeBitCast(OpaquePointer(bitPattern: -1), to: sqlite3_destructor_type.self)

extension String: SQLiteParameter {
    package func bind(to statement: OpaquePointer, at index: Int32) -> Int32 {
        var text = self
        return text.withUTF8 { bytes in
            // An empty buffer may have no address, and a null pointer would bind NULL.
            bytes.isEmpty
                ? sqlite3_bind_text(statement, index, "", 0, transient)
                : sqlite3_bind_text(statement, index, bytes.baseAddress, Int32(bytes.count), transient)
        }
    }
}

extension Int64: SQLiteParameter {
    package func bind(to statement: OpaquePointer, at index: Int32) -> Int32 {
        sqlite3_bind_int64(statement, index, self)
    }
}

extension Bool: SQLiteParameter {
    package func bind(to statement: OpaquePointer, at index: Int32) -> Int32 {
        sqlite3_bind_int64(statement, index, self ? 1 : 0)
    }
}

extension Data: SQLiteParameter {
    package func bind(to statement: OpaquePointer, at index: Int32) -> Int32 {
        withUnsafeBytes { bytes in
            bytes.isEmpty
                ? sqlite3_bind_zeroblob(statement, index, 0)
                : sqlite3_bind_blob(statement, index, bytes.baseAddress, Int32(bytes.count), transient)
        }
    }
}

extension Array: SQLiteParameter where Element == UInt8 {
    package func bind(to statement: OpaquePointer, at index: Int32) -> Int32 {
        withUnsafeBytes { bytes in
            bytes.isEmpty
                ? sqlite3_bind_zeroblob(statement, index, 0)
                : sqlite3_bind_blob(statement, index, bytes.baseAddress, Int32(bytes.count), transient)
        }
    }
}

extension Optional: SQLiteParameter where Wrapped: SQLiteParameter {
    package func bind(to statement: OpaquePointer, at index: Int32) -> Int32 {
        switch self {
        case .some(let value): value.bind(to: statement, at: index)
        case .none: sqlite3_bind_null(statement, index)
        }
    }
}
