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
