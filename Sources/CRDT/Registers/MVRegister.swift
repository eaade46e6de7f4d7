/// A multi-value register (MVRegister): concurrent writes are all kept as siblings.
///
/// A write supersedes exactly the siblings its replica had seen when it wrote; writes that
/// were concurrent with it stay as siblings until a later write (for example a person's
/// resolution) supersedes them. Every replica shows the same ``value``: the sibling with the
/// greatest ``HLC`` (ties cannot happen between different replicas, whose IDs differ).
/// Nothing is dropped silently: ``hasConflict`` says when siblings exist.
///
/// ```swift
/// var name = MVRegister<String>()
/// let delta = name.write("Jana", at: clock.now(wall: wallMillis))
/// peer.merge(delta)            // ship the delta, not the whole register
/// name.value                   // "Jana"
/// ```
///
/// - Complexity: merge is O(n + m) in the siblings, O(1) when both sides hold one value.
/// - SeeAlso: DeCandia et al., "Dynamo" (SOSP 2007) for multi-value registers; Almeida et al.,
///   "Delta State Replicated Data Types" (2018) for the delta form used here.
public struct MVRegister<Value: Hashable & Comparable & Sendable>: Hashable, Sendable {
    public typealias Sibling = DotKernel<Value>.Event

    @inlinable public var kernel: DotKernel<Value> { _kernel }
    @usableFromInline internal var _kernel: DotKernel<Value>

    @inlinable
    public init() {
        _kernel = DotKernel()
    }

    @inlinable
    public init(kernel: DotKernel<Value>) {
        _kernel = kernel
    }

    /// The sibling values in stamp order (the winner last).
    @inlinable public var siblings: [Sibling] { _kernel.live }

    @inlinable public var values: [Value] { _kernel.live.map(\.payload) }

    /// The deterministic winner: the sibling with the greatest stamp.
    @inlinable public var value: Value? { _kernel.winner?.payload }

    /// The stamp of the winning sibling.
    @inlinable public var stamp: HLC? { _kernel.winner?.stamp }

    /// True when concurrent writes left more than one sibling.
    @inlinable public var hasConflict: Bool { _kernel.liveCount > 1 }

    /// Writes `value`, superseding every sibling seen here, and returns the delta.
    ///
    /// - Precondition: `stamp` comes from this replica's clock after everything merged here.
    @inlinable @discardableResult
    public mutating func write(_ value: Value, at stamp: HLC) -> MVRegister {
        MVRegister(kernel: _kernel.write(value, at: stamp))
    }
}

extension MVRegister: Mergeable {
    @inlinable public var isBottom: Bool { _kernel.isBottom }

    @inlinable
    public mutating func merge(_ other: MVRegister) {
        _kernel.merge(other._kernel)
    }
}

extension MVRegister: ObservedRemovable {
    /// Clears every sibling seen here; a concurrent write elsewhere survives (update wins).
    @inlinable @discardableResult
    public mutating func removeAll() -> MVRegister {
        MVRegister(kernel: _kernel.removeAll())
    }
}

/// A CRDT whose observed content can be removed, leaving concurrent additions elsewhere alive.
/// Maps use it to remove a key without losing a concurrent update of the key's value.
public protocol ObservedRemovable: Mergeable {
    /// Removes everything seen here and returns the delta.
    @discardableResult
    mutating func removeAll() -> Self
}
