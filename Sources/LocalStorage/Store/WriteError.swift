import CRDT
import Domain
import Foundation
import GRDB
import StoreSupport

/// A command refused by validation, or a store that failed.
public enum WriteError: Error, CustomStringConvertible, Sendable {
    case invalid(ValidationError)
    case storage(StoreError)

    public var description: String {
        switch self {
        case .invalid(let error): error.description
        case .storage(let error): error.description
        }
    }
}
