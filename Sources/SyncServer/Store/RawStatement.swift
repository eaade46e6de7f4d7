import Foundation
import GRDB
import GRDBSQLite

/// One of GRDB's cached statements, bound and stepped through the SQLite C API.
///
/// For the few statements the ingest thread runs per change: GRDB's `execute(arguments:)` and
/// `Row.fetchOne` build a `StatementArguments` array of `DatabaseValue`s and a `Row` per call,
/// which was about an eighth of the writer thread's time in a profile of `server-bench`. The
/// statement stays GRDB's (prepared once per connection, finalized when the connection
/// closes); it is reset before each use, so GRDB can use it again afterwards.
struct RawStatement {
    private let statement: Statement
    private var handle: OpaquePointer { statement.sqliteStatement }

    init(_ db: Database, _ sql: String) throws {
        statement = try db.cachedStatement(sql: sql)
        sqlite3_reset(handle)
        sqlite3_clear_bindings(handle)
    }

    /// SQLite copies the bytes (`SQLITE_TRANSIENT`): the Swift values may go away at once.
    private static let transient = unsafeBitCast(OpaquePointer(bitPattern: -1), to: sqlite3_destructor_type.self)

    func bind(_ index: Int32, _ text: String) throws {
        try check(sqlite3_bind_text(handle, index, text, -1, Self.transient))
    }

    func bind(_ index: Int32, _ value: Int64) throws {
        try check(sqlite3_bind_int64(handle, index, value))
    }

    func bind(_ index: Int32, _ bytes: Data) throws {
        try check(
            bytes.withUnsafeBytes { buffer in
                // A zero-length blob still needs a non-null pointer to be a blob, not NULL.
                sqlite3_bind_blob(
                    handle, index, buffer.baseAddress ?? UnsafeRawPointer(bitPattern: 1), Int32(buffer.count),
                    Self.transient)
            })
    }

    /// Runs the statement to its end (an INSERT or UPDATE).
    func run() throws {
        let code = sqlite3_step(handle)
        guard code == SQLITE_DONE else { throw error(code) }
        sqlite3_reset(handle)
    }

    /// The first row's blob columns, or nil when there is no row (a SELECT).
    func firstRowBlobs(_ columns: Int32) throws -> [Data]? {
        let code = sqlite3_step(handle)
        defer { sqlite3_reset(handle) }
        if code == SQLITE_DONE { return nil }
        guard code == SQLITE_ROW else { throw error(code) }
        return (0..<columns).map { column in
            let count = Int(sqlite3_column_bytes(handle, column))
            guard count > 0, let bytes = sqlite3_column_blob(handle, column) else { return Data() }
            return Data(bytes: bytes, count: count)
        }
    }

    private func check(_ code: Int32) throws {
        guard code == SQLITE_OK else { throw error(code) }
    }

    private func error(_ code: Int32) -> DatabaseError {
        DatabaseError(
            resultCode: ResultCode(rawValue: code), message: String(cString: sqlite3_errmsg(sqlite3_db_handle(handle))),
            sql: statement.sql)
    }
}
