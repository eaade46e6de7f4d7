/// An observed-remove map (ORMap) whose values are CRDTs: records of registers, maps of sets,
/// maps of maps.
///
/// Values merge key by key with their own merge, so two replicas editing different fields of
/// one record, or the same field concurrently, lose nothing. Removing a key removes what its
/// replica has seen of the value (``ObservedRemovable``); an update made concurrently elsewhere
/// survives the removal (update wins), the same rule as ``ORSet``.
///
/// ```swift
/// var contacts = ORMap<UInt64, MVRegister<String>>()
/// let delta = contacts.update(42) { name in name.write("Jana", at: stamp) }
/// replica.merge(delta)
/// ```
///
/// - Complexity: merge is O(m) dictionary operations for an `other` of m keys, each doing the
///   value's merge; a single-field delta into a map of any size is one hash lookup plus O(1).
/// - SeeAlso: Almeida, Shoker, Baquero, "Delta State Replicated Data Types" (2018), §6.3.
public struct ORMap<Key: Hashable & Comparable & Sendable, Value: Mergeable>: Sendable {
    @inlinable public var valueByKey: [Key: Value] { _valueByKey }
    @usableFromInline internal var _valueByKey: [Key: Value]

    @inlinable
    public init() {
        _valueByKey = [:]
    }

    /// A map holding `valueByKey`; bottom values are dropped.
    @inlinable
    public init(_ valueByKey: [Key: Value]) {
        // Filtering copies the whole dictionary; most callers pass no bottom values at all.
        _valueByKey = valueByKey.values.contains { $0.isBottom } ? valueByKey.filter { !$0.value.isBottom } : valueByKey
    }

    @inlinable
    public subscript(key: Key) -> Value? { valueByKey[key] }

    @inlinable public var count: Int { _valueByKey.count }
    public var keys: Dictionary<Key, Value>.Keys { valueByKey.keys }

    /// Keys in ascending order (the order encodings and listings use, identical everywhere).
    public var sortedKeys: [Key] { valueByKey.keys.sorted() }

    /// Makes room for `count` keys, so a map about to grow by many keys does not rehash (moving
    /// every value) again and again as it grows.
    @inlinable
    public mutating func reserveCapacity(_ count: Int) {
        _valueByKey.reserveCapacity(count)
    }

    /// Applies `mutation` to the value at `key` (starting from bottom) and returns the map delta.
    /// `mutation` returns the value's own delta, as every mutation in this package does.
    @inlinable @discardableResult
    public mutating func update(_ key: Key, _ mutation: (inout Value) -> Value) -> ORMap {
        var value = _valueByKey.removeValue(forKey: key) ?? Value()
        let delta = mutation(&value)
        if !value.isBottom { _valueByKey[key] = value }
        return delta.isBottom ? ORMap() : ORMap(uncheckedValueByKey: [key: delta])
    }

    @inlinable
    internal init(uncheckedValueByKey: [Key: Value]) {
        _valueByKey = uncheckedValueByKey
    }
}

extension ORMap where Value: ObservedRemovable {
    /// Removes what has been seen of the value at `key` and returns the delta.
    @discardableResult
    public mutating func remove(_ key: Key) -> ORMap {
        update(key) { value in value.removeAll() }
    }
}

extension ORMap: Equatable {}

extension ORMap: Mergeable {
    /// Bottom values are never stored, so an empty map is exactly bottom.
    @inlinable public var isBottom: Bool { _valueByKey.isEmpty }

    @inlinable
    public mutating func merge(_ other: ORMap) {
        // An empty map takes the other's storage, unless it has room reserved for more.
        if _valueByKey.isEmpty && _valueByKey.capacity < other._valueByKey.count {
            _valueByKey = other._valueByKey
            return
        }
        for (key, value) in other._valueByKey {
            // Merge in place (no copy of the value's storage); a new key takes the value as it
            // is, without building a bottom value to merge into.
            if let index = _valueByKey.index(forKey: key) {
                _valueByKey.values[index].merge(value)
            } else {
                _valueByKey[key] = value
            }
        }
    }
}

extension ORMap {
    /// Merges an update whose result is known already: `joined` holds, at each key the update
    /// touches, this map's value merged with the update's (computed earlier by a caller that
    /// needed those values first, as a store does to persist them before changing memory). Its
    /// values are taken as they are: merging the update again would cost as much once more.
    ///
    /// Returns the values it replaced, so a caller on a busy thread can free them elsewhere.
    ///
    /// - Precondition: every value of `joined` includes this map's value at its key (checked in
    ///   debug builds).
    @inlinable @discardableResult
    public mutating func mergeJoined(_ joined: ORMap) -> [Value] {
        _valueByKey.reserveCapacity(_valueByKey.count + joined.count)
        var replaced = [Value]()
        replaced.reserveCapacity(joined.count)
        for (key, value) in joined._valueByKey {
            assert(_valueByKey[key].map { $0.merging(value) == value } ?? true, "\(key) is not a join of this value")
            if let old = _valueByKey.updateValue(value, forKey: key) { replaced.append(old) }
        }
        return replaced
    }
}

extension ORMap: ObservedRemovable where Value: ObservedRemovable {
    @discardableResult
    public mutating func removeAll() -> ORMap {
        var delta = [Key: Value]()
        for key in Array(valueByKey.keys) {
            let valueDelta = _valueByKey[key]!.removeAll()
            if !valueDelta.isBottom { delta[key] = valueDelta }
        }
        return ORMap(uncheckedValueByKey: delta)
    }
}
