/// A state-based CRDT: a join-semilattice whose ``merge(_:)`` is commutative, associative and
/// idempotent, so replicas that have merged the same states hold equal values, whatever the
/// order, duplication or grouping of the merges.
///
/// `init()` is the bottom element (the empty state); merging it changes nothing. Mutations of
/// the conforming types return a *delta*: a value of the same type holding just what changed,
/// such that `state.merging(delta)` equals the state after the mutation. Deltas are what
/// replicas ship; a full state is just a large delta.
///
/// - SeeAlso: Shapiro, Preguiça, Baquero, Zawirski, "Conflict-free Replicated Data Types"
///   (SSS 2011); Almeida, Shoker, Baquero, "Delta State Replicated Data Types" (JPDC 2018).
public protocol Mergeable: Equatable, Sendable {
    /// The bottom element: the state of a replica that has seen nothing.
    init()
    /// Joins `other` into `self` (least upper bound).
    mutating func merge(_ other: Self)
    /// True when this is the bottom element. Types override the default (`self == Self()`)
    /// with an O(1) check: merges ask it for every field of every delta.
    var isBottom: Bool { get }
}

extension Mergeable {
    /// The join of `self` and `other`.
    @inlinable
    public func merging(_ other: Self) -> Self {
        var result = self
        result.merge(other)
        return result
    }

    @inlinable
    public var isBottom: Bool { self == Self() }
}

/// The union of two arrays sorted by a key no two elements of one array share, in key order:
/// an element whose key is on one side only is kept, two with the same key are joined by
/// `combine`. The walk behind the merges of ``VersionVector``, ``ORSet`` and Domain's `Authors`.
/// `precedes(a, b)` is true when `a`'s key is below `b`'s; it compares in place, so no key
/// (an element's string, say) is copied to compare it.
///
/// - Complexity: O(n + m).
@inlinable
public func mergeSorted<Element>(
    _ left: [Element], _ right: [Element], precedes: (Element, Element) -> Bool,
    combine: (Element, Element) -> Element
) -> [Element] {
    var merged = [Element]()
    merged.reserveCapacity(left.count + right.count)
    var i = 0
    var j = 0
    while i < left.count && j < right.count {
        if precedes(left[i], right[j]) {
            merged.append(left[i])
            i += 1
        } else if precedes(right[j], left[i]) {
            merged.append(right[j])
            j += 1
        } else {
            merged.append(combine(left[i], right[j]))
            i += 1
            j += 1
        }
    }
    merged.append(contentsOf: left[i...])
    merged.append(contentsOf: right[j...])
    return merged
}
