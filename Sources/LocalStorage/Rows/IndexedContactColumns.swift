import CRDT
import Domain
import Foundation
import GRDB
import GRDBSQLite
import StoreSupport

/// A contact's values that an index of `contacts` holds (`contacts_listing`, `contacts_by_owner`).
struct IndexedContactColumns: Equatable {
    let name: String
    let company: String?
    let owner: String?
    let status: String?
    let lifecycle: String
    var hasConflict: Bool

    /// These values with the conflict flag cleared.
    var droppingConflict: IndexedContactColumns {
        var copy = self
        copy.hasConflict = false
        return copy
    }

    init(_ contact: Contact) {
        name = contact.name.value ?? ""
        company = contact.company.value
        owner = contact.owner.value
        status = contact.status.value?.rawValue
        lifecycle = lifecycleName(contact)
        hasConflict = contact.hasConflictingValue
    }
}
