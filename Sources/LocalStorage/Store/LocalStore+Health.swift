import CRDT
import Domain
import Foundation
import GRDB
import StoreSupport

extension LocalStore {
    /// `PRAGMA integrity_check` ("ok" when sound).
    public func integrityCheck() throws(StoreError) -> [String] {
        try Self.wrap("checking \(path)") {
            try database.read { db in try String.fetchAll(db, sql: "PRAGMA integrity_check") }
        }
    }

    /// The size of the store on disk (database and WAL), bytes.
    public func sizeOnDisk() -> Int {
        [path, path + "-wal"].reduce(0) { total, file in
            total + ((try? FileManager.default.attributesOfItem(atPath: file)[.size] as? Int) ?? 0)
        }
    }
}
