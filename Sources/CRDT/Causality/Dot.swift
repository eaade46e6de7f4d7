/// A dot: the identity of one event, a (replica, counter) pair.
///
/// The counter of a replica's dots only ever grows. In this package a replica's dots are its
/// ``HLC`` stamps (`counter` is the packed HLC time), which are strictly increasing per replica
/// but not contiguous; see ``VersionVector`` for why that is enough here.
public struct Dot: Hashable, Comparable, Sendable, Codable {
    public let replica: ReplicaID
    public let counter: UInt64

    @inlinable
    public init(replica: ReplicaID, counter: UInt64) {
        self.replica = replica
        self.counter = counter
    }

    @inlinable
    public static func < (lhs: Dot, rhs: Dot) -> Bool {
        lhs.replica != rhs.replica ? lhs.replica < rhs.replica : lhs.counter < rhs.counter
    }
}

extension Dot: CustomStringConvertible {
    public var description: String { "\(replica.hex):\(counter)" }
}
