import CRDT

/// What one change (a delta of a ``TenantState``) did to one entity, as people read it: created,
/// edited, deleted or restored it, and the values it set, added or removed.
///
/// Made from the delta alone, so it describes a change that never reached the server (a
/// refused one) as well as any other. Bookkeeping (the lifecycle's `seen` context, the authors)
/// is left out; conflict decisions (`not-duplicate-of`, `accepted-overlaps`, `orphan-accepted`)
/// are listed like any field.
///
/// ```swift
/// for entity in change.entityChanges() { print(entity.action, entity.kind, entity.id, entity.fields) }
/// ```
public struct EntityChange: Hashable, Sendable, Codable {
    public enum Action: String, Hashable, Sendable, Codable {
        case create, edit, delete, restore
        /// Merged into another contact (a duplicate resolution).
        case merge
    }

    public let kind: EntityKind
    public let id: EntityID
    public let action: Action
    public let fields: [FieldChange]

    public init(kind: EntityKind, id: EntityID, action: Action, fields: [FieldChange]) {
        self.kind = kind
        self.id = id
        self.action = action
        self.fields = fields
    }
}

/// One value a change wrote: a register set to `value`, a set element added or removed, or a
/// map entry removed (`remove` with the key's field name and an empty value).
public struct FieldChange: Hashable, Sendable, Codable {
    public enum Action: String, Hashable, Sendable, Codable { case set, add, remove }

    /// The field as the CLI names it (`name`, `phones`, `field.customer-no`, `interval`).
    public let field: String
    public let action: Action
    public let value: String

    public init(field: String, action: Action, value: String) {
        self.field = field
        self.action = action
        self.value = value
    }
}

extension TenantState {
    /// The entities this change touched and what it did to each: contacts first, then notes,
    /// then schedule entries, each by ID (the order ``reissue(_:ids:context:)`` runs them in, so
    /// a note can point at a contact created in the same change).
    public func entityChanges() -> [EntityChange] {
        contacts.sortedKeys.map { Self.describe($0, contacts[$0]!) }
            + notes.sortedKeys.map { Self.describe($0, notes[$0]!) }
            + schedule.sortedKeys.map { Self.describe($0, schedule[$0]!) }
    }

    static func describe<E: Entity>(_ id: EntityID, _ delta: E) -> EntityChange {
        var describer = ChangeDescriber(names: E.fields.map(\.name))
        delta.visitFields(&describer)
        return EntityChange(kind: E.kind, id: id, action: action(id, delta), fields: describer.changes)
    }

    /// A creation writes `active` with the stamp the ID was made from; another `active` is a
    /// restore (or a merge's survivor being written active again).
    static func action<E: Entity>(_ id: EntityID, _ delta: E) -> EntityChange.Action {
        let siblings = delta.lifecycle.siblings
        if siblings.contains(where: { $0.payload == .active && EntityID(creation: $0.stamp) == id }) { return .create }
        switch delta.lifecycle.value {
        case .deleted?: return .delete
        case .merged?: return .merge
        case .active?: return .restore
        case nil: return .edit
        }
    }
}

/// Collects the ``FieldChange``s of an entity delta, field by field (see ``Entity/visitFields(_:)``).
struct ChangeDescriber: FieldVisitor {
    let names: [String]
    var index = 0
    var changes = [FieldChange]()

    init(names: [String]) { self.names = names }

    mutating func visit<F: FieldCRDT>(_ field: F) {
        defer { index += 1 }
        // The lifecycle is the change's action; the authors are bookkeeping.
        guard names[index] != "lifecycle", names[index] != "authors", let field = field as? any ChangeDescribing
        else { return }
        changes += field.fieldChanges(names[index])
    }
}

/// A field that can say what a delta of it wrote.
protocol ChangeDescribing {
    func fieldChanges(_ field: String) -> [FieldChange]
}

extension MVRegister: ChangeDescribing where Value: DisplayValue {
    func fieldChanges(_ field: String) -> [FieldChange] {
        // A register with no live value but a context was cleared (a custom field removed).
        if values.isEmpty { return isBottom ? [] : [FieldChange(field: field, action: .remove, value: "")] }
        return [FieldChange(field: field, action: .set, value: value!.display)]
    }
}

extension ORSet: ChangeDescribing where Element: DisplayValue {
    func fieldChanges(_ field: String) -> [FieldChange] {
        // An entry with no live insertion is a removal of the insertions it names.
        entries.map { FieldChange(field: field, action: $0.kernel.isEmpty ? .remove : .add, value: $0.element.display) }
    }
}

extension ORMap: ChangeDescribing where Key == String, Value == MVRegister<String> {
    func fieldChanges(_ field: String) -> [FieldChange] {
        sortedKeys.flatMap { self[$0]!.fieldChanges("\(field).\($0)") }
    }
}
