import Foundation
import GRDB
import GRDBSQLite
import StoreSupport

/// `search_fold(text)` in SQL: lower case without diacritics, so "capek" and "ČAPEK" find
/// "Čapek" (SQLite's LIKE folds only ASCII letters). Contact search calls it on every name.
///
/// Foundation's folding goes through `NSString` and was 44 % of a search's samples at 100,000
/// contacts. Names in Latin letters (every scalar below U+0250: ASCII, Latin-1, Latin Extended-A
/// and -B) fold scalar by scalar — no combining mark lies below U+0300, so no scalar's fold
/// depends on its neighbours — from a table made of Foundation's own fold of each scalar, read
/// straight from SQLite's UTF-8. Any other name goes to Foundation whole.
public enum SearchFold {
    /// Foundation's fold of every scalar from U+0080 to U+024F, as UTF-8.
    static let latin: [[UInt8]] = (0x80..<0x250).map { Array(foundation(String(UnicodeScalar($0)!)).utf8) }

    public static func foundation(_ text: String) -> String {
        text.folding(options: [.caseInsensitive, .diacriticInsensitive], locale: nil)
    }

    /// The fold of `text`: the same as Foundation's.
    public static func fold(_ text: String) -> String {
        var utf8 = text
        let folded = utf8.withUTF8 { bytes in
            var output = [UInt8]()
            return latin(bytes, into: &output) ? String(decoding: output, as: UTF8.self) : nil
        }
        return folded ?? foundation(text)
    }

    /// Appends the fold of the UTF-8 `bytes` to `output` when every scalar is below U+0250;
    /// false (with `output` partly written) for anything else.
    static func latin(_ bytes: UnsafeBufferPointer<UInt8>, into output: inout [UInt8]) -> Bool {
        output.reserveCapacity(bytes.count)
        var index = 0
        while index < bytes.count {
            let lead = bytes[index]
            if lead < 0x80 {
                output.append(lead >= 0x41 && lead <= 0x5A ? lead + 0x20 : lead)
                index += 1
                continue
            }
            // Two-byte sequences with a lead of 0xC2-0xC9 are U+0080-U+027F.
            guard lead >= 0xC2, lead <= 0xC9, index + 1 < bytes.count, bytes[index + 1] & 0xC0 == 0x80 else {
                return false
            }
            let scalar = Int(lead & 0x1F) << 6 | Int(bytes[index + 1] & 0x3F)
            guard scalar < 0x250 else { return false }
            output.append(contentsOf: latin[scalar - 0x80])
            index += 2
        }
        return true
    }

    /// Registers `search_fold` on a connection, through SQLite's C API: GRDB's functions convert
    /// every argument into a `DatabaseValue` first.
    public static func register(on db: Database) throws {
        let code = sqlite3_create_function_v2(
            db.sqliteConnection, "search_fold", 1, SQLITE_UTF8 | SQLITE_DETERMINISTIC, nil,
            { context, _, values in
                guard let value = values?[0], sqlite3_value_type(value) == SQLITE_TEXT,
                    let text = sqlite3_value_text(value)
                else { return sqlite3_result_null(context) }
                let bytes = UnsafeBufferPointer(start: text, count: Int(sqlite3_value_bytes(value)))
                var output = [UInt8]()
                if !SearchFold.latin(bytes, into: &output) {
                    output = Array(SearchFold.foundation(String(decoding: bytes, as: UTF8.self)).utf8)
                }
                output.withUnsafeBytes { folded in
                    if let start = folded.baseAddress?.assumingMemoryBound(to: CChar.self) {
                        sqlite3_result_text(context, start, Int32(folded.count), transient)
                    } else {
                        sqlite3_result_text(context, "", 0, transient)  // a null pointer would be NULL
                    }
                }
            }, nil, nil, nil)
        guard code == SQLITE_OK else { throw sqliteFailure(code, db, sql: "search_fold") }
    }
}
