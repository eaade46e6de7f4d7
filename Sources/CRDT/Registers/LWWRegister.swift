/// A last-writer-wins register (LWWRegister): the write with the greatest ``HLC`` wins.
///
/// Ties cannot happen between replicas (the replica ID is part of the stamp). Concurrent
/// writes lose silently, so use this only where losing one of two concurrent values is the
/// intended meaning (for example "last seen at"); user-edited fields use ``MVRegister``.
///
/// ```swift
/// var lastSeen = LWWRegister<UInt64>()
/// lastSeen.write(1_764_000_000_000, at: clock.now(wall: wallMillis))
/// ```
///
/// - Complexity: merge is O(1).
/// - SeeAlso: Shapiro et al., "A comprehensive study of Convergent and Commutative Replicated
///   Data Types" (INRIA RR-7506, 2011), §3.2.1.
public struct LWWRegister<Value: Hashable & Comparable & Sendable>: Sendable {
    public private(set) var stamp: HLC?
    public private(set) var value: Value?

    public init() {}

    public init(value: Value, stamp: HLC) {
        self.value = value
        self.stamp = stamp
    }

    /// Writes `value` and returns the delta (the register itself: it is that small).
    ///
    /// - Precondition: `stamp` is newer than the current stamp (the replica's clock, having
    ///   observed the current stamp, guarantees this).
    @discardableResult
    public mutating func write(_ value: Value, at stamp: HLC) -> LWWRegister {
        precondition(self.stamp.map { $0 < stamp } ?? true, "stamp \(stamp) is not newer than \(self.stamp!)")
        self.value = value
        self.stamp = stamp
        return self
    }
}

extension LWWRegister: Equatable {}

extension LWWRegister: Mergeable {
    @inlinable public var isBottom: Bool { stamp == nil }

    @inlinable
    public mutating func merge(_ other: LWWRegister) {
        guard let otherStamp = other.stamp, let otherValue = other.value else { return }
        guard let stamp, let value else {
            self = other
            return
        }
        // Equal stamps with different values only come from a faulty peer; the greater value
        // wins so merge stays commutative.
        if otherStamp > stamp || (otherStamp == stamp && otherValue > value) {
            self = other
        }
    }
}
