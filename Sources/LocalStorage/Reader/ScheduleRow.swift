import CRDT
import Domain
import Foundation
import GRDB
import GRDBSQLite
import StoreSupport

/// A schedule entry as listed, for one assignee.
public struct ScheduleRow: Hashable, Sendable, Codable {
    public let id: String
    public let assignee: String
    public let title: String?
    public let start: Int64
    public let end: Int64
    public let status: String?
}
