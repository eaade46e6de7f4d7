import CRDT
import Domain
import Foundation
import GRDB
import StoreSupport

/// The devices audit rows name (`ReplicaID.hex`), each spelled once per step: a pull's entities
/// were written by a few replicas, and a string per row was an allocation per pulled entity on
/// the preparing side and a free on the writer's.
struct DeviceNames {
    private var names: [ReplicaID: String] = [:]

    mutating func name(of replica: ReplicaID) -> String {
        if let name = names[replica] { return name }
        let name = replica.hex
        names[replica] = name
        return name
    }
}
