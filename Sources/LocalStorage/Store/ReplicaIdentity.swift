import CRDT
import Domain
import Foundation
import GRDB
import StoreSupport

/// Who this replica is: its ID (never reused), its user and tenant.
public struct ReplicaIdentity: Hashable, Sendable, Codable {
    public let replica: ReplicaID
    public let user: String
    public let tenant: String

    public init(replica: ReplicaID, user: String, tenant: String) {
        self.replica = replica
        self.user = user
        self.tenant = tenant
    }
}
