import CRDT
import Domain
import Foundation
import GRDB
import StoreSupport

/// A field's current value and who wrote it.
public struct FieldAuthorship: Codable, Equatable, Sendable {
    public let field: String
    public let value: String
    public let user: String
    public let device: String
    public let at: String
}
