import CRDT
import Domain
import Foundation
import GRDB
import GRDBSQLite
import StoreSupport

/// A call note as listed.
public struct NoteRow: Hashable, Sendable, Codable {
    public let id: String
    public let contactID: String?
    public let author: String?
    public let callTime: Int64?
    public let outcome: String?
    public let body: String?
}
