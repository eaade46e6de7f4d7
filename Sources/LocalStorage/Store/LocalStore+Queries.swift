import CRDT
import Domain
import Foundation
import GRDB
import GRDBSQLite
import StoreSupport

/// A contact as listed: its displayed values.
public struct ContactRow: Hashable, Sendable, Codable {
    public let id: String
    public let name: String
    public let company: String?
    public let owner: String?
    public let status: String?
    public let lifecycle: String
    public let hasConflict: Bool
}

/// A call note as listed.
public struct NoteRow: Hashable, Sendable, Codable {
    public let id: String
    public let contactID: String?
    public let author: String?
    public let callTime: Int64?
    public let outcome: String?
    public let body: String?
}

/// A schedule entry as listed, for one assignee.
public struct ScheduleRow: Hashable, Sendable, Codable {
    public let id: String
    public let assignee: String
    public let title: String?
    public let start: Int64
    public let end: Int64
    public let status: String?
}

extension LocalStore {
    // The queries of the store's reader (``ReplicaReader``), on the store itself.

    public func contacts(
        search: String? = nil, tag: String? = nil, owner: String? = nil, includeDeleted: Bool = false
    ) throws(StoreError) -> [ContactRow] {
        try reader.contacts(search: search, tag: tag, owner: owner, includeDeleted: includeDeleted)
    }

    public func notes(of contact: EntityID) throws(StoreError) -> [NoteRow] { try reader.notes(of: contact) }

    public func schedule(assignee: String? = nil, from: Int64, to: Int64) throws(StoreError) -> [ScheduleRow] {
        try reader.schedule(assignee: assignee, from: from, to: to)
    }

    public func history(of id: EntityID) throws(StoreError) -> EntityHistory? { try reader.history(of: id) }

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
