import CRDT
import Domain
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
    ///
    /// Inlinable, as the two below: the stores call these once per row on their hot paths from
    /// other modules, and an unspecialized generic call costs them ~10 % of an apply or import.
    @inlinable
    package func run<each P: SQLiteParameter>(_ db: Database, _ parameters: repeat each P) throws {
        try withBound(db, repeat each parameters) { handle in
            let code = sqlite3_step(handle)
            guard code == SQLITE_DONE else { throw sqliteFailure(code, db, sql: sql) }
        }
    }

    /// The first row's first `columns` columns as bytes (blobs), or nil when there is no row.
    @inlinable
    package func firstRowBlobs<each P: SQLiteParameter>(
        columns: Int32, _ db: Database, _ parameters: repeat each P
    ) throws -> [Data]? {
        try withBound(db, repeat each parameters) { handle in
            let code = sqlite3_step(handle)
            if code == SQLITE_DONE { return nil }
            guard code == SQLITE_ROW else { throw sqliteFailure(code, db, sql: sql) }
            return (0..<columns).map { column in
                let count = Int(sqlite3_column_bytes(handle, column))
                guard count > 0, let bytes = sqlite3_column_blob(handle, column) else { return Data() }
                return Data(bytes: bytes, count: count)
            }
        }
    }

    /// Binds `parameters` and runs `body` with the statement, then resets it and clears the
    /// bindings. Texts and blobs are copied into one scratch buffer for the call (on the stack
    /// when small) and bound without SQLite copying them again (`SQLITE_STATIC`): bound
    /// `SQLITE_TRANSIENT`, SQLite allocated, copied and freed each one — 9 of the ~43 allocations
    /// per pulled title change. The buffer outlives `body`, and the bindings pointing into it are
    /// cleared before it goes.
    @inlinable
    package func withBound<each P: SQLiteParameter, R>(
        _ db: Database, _ parameters: repeat each P, body: (OpaquePointer) throws -> R
    ) throws -> R {
        let handle = sqliteStatement
        var bytes = 0
        for parameter in repeat each parameters { bytes += parameter.boundBytes }
        return try withUnsafeTemporaryAllocation(byteCount: bytes, alignment: 1) { scratch in
            sqlite3_reset(handle)
            defer {
                sqlite3_reset(handle)
                sqlite3_clear_bindings(handle)
            }
            var free = scratch
            var index: Int32 = 0
            for parameter in repeat each parameters {
                index += 1
                let code = parameter.bind(to: handle, at: index, copyingInto: &free)
                guard code == SQLITE_OK else { throw sqliteFailure(code, db, sql: sql) }
            }
            precondition(index == sqlite3_bind_parameter_count(handle), "\(sql) takes other parameters")
            return try body(handle)
        }
    }
}

/// The error of a statement run through SQLite's C API, as GRDB would have thrown it.
@usableFromInline
package func sqliteFailure(_ code: Int32, _ db: Database, sql: String) -> DatabaseError {
    let message = db.sqliteConnection.map { String(cString: sqlite3_errmsg($0)) }
    return DatabaseError(resultCode: ResultCode(rawValue: code), message: message, sql: sql)
}

/// A value bound to a statement parameter with SQLite's C API.
@usableFromInline
package protocol SQLiteParameter {
    /// The room ``bind(to:at:copyingInto:)`` takes in the scratch buffer.
    var boundBytes: Int { get }
    /// Binds this value; a text or blob is copied to the front of `scratch`, which then starts
    /// after it, and bound from there without SQLite copying it (`SQLITE_STATIC`).
    func bind(
        to statement: OpaquePointer, at index: Int32, copyingInto scratch: inout UnsafeMutableRawBufferPointer
    )
        -> Int32
}

/// SQLite copies the bytes (`SQLITE_TRANSIENT`), so they need not outlive the call.
package let transient = unsafeBitCast(OpaquePointer(bitPattern: -1), to: sqlite3_destructor_type.self)

/// SQLite uses the bound bytes where they are, until the statement is reset and its bindings
/// cleared (``Statement/withBound``).
private let staticBytes = unsafeBitCast(OpaquePointer(bitPattern: 0), to: sqlite3_destructor_type.self)

/// Copies `bytes` to the front of `scratch`, which has room for them and one byte more, and
/// moves its start past them; returns where they went (an address even for no bytes: a null
/// pointer would bind NULL).
private func copy(
    _ bytes: UnsafeRawBufferPointer, into scratch: inout UnsafeMutableRawBufferPointer
)
    -> UnsafeMutableRawPointer
{
    let target = scratch.baseAddress!
    if !bytes.isEmpty { target.copyMemory(from: bytes.baseAddress!, byteCount: bytes.count) }
    scratch = UnsafeMutableRawBufferPointer(rebasing: scratch[max(bytes.count, 1)...])
    return target
}

extension String: SQLiteParameter {
    @usableFromInline package var boundBytes: Int { utf8.count + 1 }

    @usableFromInline package func bind(
        to statement: OpaquePointer, at index: Int32, copyingInto scratch: inout UnsafeMutableRawBufferPointer
    ) -> Int32 {
        var text = self
        return text.withUTF8 { bytes in
            let start = copy(UnsafeRawBufferPointer(bytes), into: &scratch)
            return sqlite3_bind_text(
                statement, index, start.assumingMemoryBound(to: CChar.self), Int32(bytes.count), staticBytes)
        }
    }
}

/// Binds the `count` bytes written at the front of `scratch` as a text and moves its start past them.
private func bindWrittenText(
    count: Int, to statement: OpaquePointer, at index: Int32, scratch: inout UnsafeMutableRawBufferPointer
) -> Int32 {
    let start = scratch.baseAddress!
    scratch = UnsafeMutableRawBufferPointer(rebasing: scratch[count...])
    return sqlite3_bind_text(statement, index, start.assumingMemoryBound(to: CChar.self), Int32(count), staticBytes)
}

// An entity's ID and a stamp bind as their texts (`EntityID.text`, `HLC.text`), written straight
// into the statement's scratch buffer: the rows and audit rows of a pulled entity need no string
// of either (two allocations per pulled entity on the preparing thread, and their frees on the
// writer's, formerly). `BindingTests` checks the bytes against the texts.

extension EntityID: SQLiteParameter {
    @usableFromInline package var boundBytes: Int { 32 }

    @usableFromInline package func bind(
        to statement: OpaquePointer, at index: Int32, copyingInto scratch: inout UnsafeMutableRawBufferPointer
    ) -> Int32 {
        let target = scratch.baseAddress!
        writeHexDigits(time, width: 16, to: target)
        writeHexDigits(replica.rawValue, width: 16, to: target + 16)
        return bindWrittenText(count: 32, to: statement, at: index, scratch: &scratch)
    }
}

extension HLC: SQLiteParameter {
    @usableFromInline package var boundBytes: Int { 34 }

    @usableFromInline package func bind(
        to statement: OpaquePointer, at index: Int32, copyingInto scratch: inout UnsafeMutableRawBufferPointer
    ) -> Int32 {
        let target = scratch.baseAddress!
        writeHexDigits(physical, width: 12, to: target)
        target.storeBytes(of: UInt8(ascii: "-"), toByteOffset: 12, as: UInt8.self)
        writeHexDigits(UInt64(logical), width: 4, to: target + 13)
        target.storeBytes(of: UInt8(ascii: "-"), toByteOffset: 17, as: UInt8.self)
        writeHexDigits(replica.rawValue, width: 16, to: target + 18)
        return bindWrittenText(count: 34, to: statement, at: index, scratch: &scratch)
    }
}

/// The stamp of a row's newest write as `updated_hlc` takes it: its text, or an empty text when
/// the change brings no write (`MAX(updated_hlc, '')` keeps the column as it was; NULL would not).
package struct StampText: SQLiteParameter, Sendable {
    let stamp: HLC?

    package init(stamp: HLC?) { self.stamp = stamp }

    @usableFromInline package var boundBytes: Int { stamp == nil ? 1 : 34 }

    @usableFromInline package func bind(
        to statement: OpaquePointer, at index: Int32, copyingInto scratch: inout UnsafeMutableRawBufferPointer
    ) -> Int32 {
        stamp?.bind(to: statement, at: index, copyingInto: &scratch)
            ?? "".bind(
                to: statement, at: index, copyingInto: &scratch)
    }
}

extension Int64: SQLiteParameter {
    @usableFromInline package var boundBytes: Int { 0 }

    @usableFromInline package func bind(
        to statement: OpaquePointer, at index: Int32, copyingInto scratch: inout UnsafeMutableRawBufferPointer
    ) -> Int32 {
        sqlite3_bind_int64(statement, index, self)
    }
}

extension Bool: SQLiteParameter {
    @usableFromInline package var boundBytes: Int { 0 }

    @usableFromInline package func bind(
        to statement: OpaquePointer, at index: Int32, copyingInto scratch: inout UnsafeMutableRawBufferPointer
    ) -> Int32 {
        sqlite3_bind_int64(statement, index, self ? 1 : 0)
    }
}

/// Binds `bytes` as a blob; an empty one as a zero-length blob (not NULL).
private func bindBlob(
    _ bytes: UnsafeRawBufferPointer, to statement: OpaquePointer, at index: Int32,
    copyingInto scratch: inout UnsafeMutableRawBufferPointer
) -> Int32 {
    if bytes.isEmpty { return sqlite3_bind_zeroblob(statement, index, 0) }
    return sqlite3_bind_blob(statement, index, copy(bytes, into: &scratch), Int32(bytes.count), staticBytes)
}

extension Data: SQLiteParameter {
    @usableFromInline package var boundBytes: Int { count }

    @usableFromInline package func bind(
        to statement: OpaquePointer, at index: Int32, copyingInto scratch: inout UnsafeMutableRawBufferPointer
    ) -> Int32 {
        withUnsafeBytes { bindBlob($0, to: statement, at: index, copyingInto: &scratch) }
    }
}

extension Array: SQLiteParameter where Element == UInt8 {
    @usableFromInline package var boundBytes: Int { count }

    @usableFromInline package func bind(
        to statement: OpaquePointer, at index: Int32, copyingInto scratch: inout UnsafeMutableRawBufferPointer
    ) -> Int32 {
        withUnsafeBytes { bindBlob($0, to: statement, at: index, copyingInto: &scratch) }
    }
}

extension Optional: SQLiteParameter where Wrapped: SQLiteParameter {
    @usableFromInline package var boundBytes: Int { self?.boundBytes ?? 0 }

    @usableFromInline package func bind(
        to statement: OpaquePointer, at index: Int32, copyingInto scratch: inout UnsafeMutableRawBufferPointer
    ) -> Int32 {
        switch self {
        case .some(let value): value.bind(to: statement, at: index, copyingInto: &scratch)
        case .none: sqlite3_bind_null(statement, index)
        }
    }
}
