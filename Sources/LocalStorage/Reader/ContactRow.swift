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
