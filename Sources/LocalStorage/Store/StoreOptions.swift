import CRDT
import Domain
import Foundation
import GRDB
import StoreSupport

/// Options for opening a store.
public struct StoreOptions: Sendable {
    public var durability: Durability = .full
    public var settings = DomainSettings()
    /// Whether applied pulls are written to the audit trail (one row per entity). Off only for
    /// the server's bootstrap-image builder, whose trail nobody reads and would ship in every
    /// image.
    public var auditsPulls = true

    public init(durability: Durability = .full, settings: DomainSettings = DomainSettings(), auditsPulls: Bool = true) {
        self.durability = durability
        self.settings = settings
        self.auditsPulls = auditsPulls
    }
}
