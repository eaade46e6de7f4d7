/// A version vector: for each replica, the largest counter seen from it.
///
/// A vector *covers* a dot when its entry for the dot's replica is at least the dot's counter.
/// Vectors are partially ordered: one dominates another when it is at least as large in every
/// entry; two are concurrent when neither dominates. Merge takes the entry-wise maximum, which
/// makes a version vector itself a (grow-only) CRDT.
///
/// Within the registers and sets of this package a vector is kept *per key* (per field, per set
/// element). A replica's operations on one key are sequential and each supersedes everything the
/// replica had seen on that key, including its own earlier dots; so "everything from replica r
/// up to counter n on this key" is exact even though HLC counters are not contiguous.
///
/// Stored as a sorted array: vectors here hold one or two entries, and an array is both smaller
/// and faster than a dictionary at that size.
///
/// - Complexity: merge, comparison and equality are O(n + m) in the number of entries.
/// - SeeAlso: Mattern, "Virtual Time and Global States of Distributed Systems" (1989).
public struct VersionVector: Hashable, Sendable {
    /// Entries sorted by replica, counters above zero.
    @inlinable public var entries: [Dot] { storage }
    @usableFromInline internal var storage: [Dot]

    @inlinable
    public init() {
        storage = []
    }

    /// An empty vector with room for `capacity` entries: one that is filled entry by entry
    /// (`add`) then allocates once rather than growing.
    @inlinable
    public init(capacity: Int) {
        storage = []
        storage.reserveCapacity(capacity)
    }

    /// A vector holding the largest counter per replica among `dots`.
    ///
    /// - Complexity: O(n log n) for n dots in any order (sorted once, never inserted into the
    ///   middle of the array: input in an adversarial order must not cost O(n²)).
    @inlinable
    public init(_ dots: some Sequence<Dot>) {
        var sorted = dots.filter { $0.counter > 0 }
        if sorted.count <= 1 {
            storage = sorted
            return
        }
        sorted.sort { $0.replica != $1.replica ? $0.replica < $1.replica : $0.counter > $1.counter }
        // The first of each replica's run holds its largest counter.
        var kept = 0
        for index in sorted.indices where index == 0 || sorted[index].replica != sorted[kept - 1].replica {
            sorted[kept] = sorted[index]
            kept += 1
        }
        sorted.removeLast(sorted.count - kept)
        storage = sorted
    }

    /// The largest counter seen from `replica` (0 when none).
    @inlinable
    public subscript(replica: ReplicaID) -> UInt64 {
        guard let index = index(of: replica) else { return 0 }
        return entries[index].counter
    }

    @inlinable public var isEmpty: Bool { entries.isEmpty }

    /// The dot with the highest counter (of equal ones, the lowest replica's): the newest event
    /// seen, since counters are HLC times.
    @inlinable
    public var newestDot: Dot? {
        var newest: Dot?
        for dot in storage where newest.map({ dot.counter > $0.counter }) ?? true { newest = dot }
        return newest
    }
    @inlinable public var count: Int { entries.count }

    /// True when `dot` is covered: its replica's entry is at least its counter.
    @inlinable
    public func covers(_ dot: Dot) -> Bool {
        self[dot.replica] >= dot.counter
    }

    /// Raises the entry of `dot`'s replica to at least `dot`'s counter.
    @inlinable
    public mutating func add(_ dot: Dot) {
        guard dot.counter > 0 else { return }
        var low = 0
        var high = entries.count
        while low < high {
            let mid = (low + high) / 2
            if entries[mid].replica < dot.replica { low = mid + 1 } else { high = mid }
        }
        if low < entries.count && entries[low].replica == dot.replica {
            if entries[low].counter < dot.counter { storage[low] = dot }
        } else {
            storage.insert(dot, at: low)
        }
    }

    /// True when every entry of `self` is at least the matching entry of `other`.
    public func dominates(_ other: VersionVector) -> Bool {
        other.entries.allSatisfy { self[$0.replica] >= $0.counter }
    }

    /// True when neither vector dominates the other: the histories they stand for diverged.
    public func isConcurrent(with other: VersionVector) -> Bool {
        !dominates(other) && !other.dominates(self)
    }

    /// How two histories relate.
    public enum Ordering: Sendable, Equatable {
        case equal, before, after, concurrent
    }

    public func compare(_ other: VersionVector) -> Ordering {
        switch (dominates(other), other.dominates(self)) {
        case (true, true): .equal
        case (true, false): .after
        case (false, true): .before
        case (false, false): .concurrent
        }
    }

    @inlinable
    internal func index(of replica: ReplicaID) -> Int? {
        var low = 0
        var high = entries.count
        while low < high {
            let mid = (low + high) / 2
            if entries[mid].replica < replica { low = mid + 1 } else { high = mid }
        }
        return low < entries.count && entries[low].replica == replica ? low : nil
    }
}

extension VersionVector: Mergeable {
    @inlinable public var isBottom: Bool { storage.isEmpty }

    /// Entry-wise maximum.
    ///
    /// - Complexity: O(n + m).
    @inlinable
    public mutating func merge(_ other: VersionVector) {
        if other.entries.isEmpty { return }
        if entries.isEmpty {
            storage = other.storage
            return
        }
        storage = mergeSorted(storage, other.storage, precedes: { $0.replica < $1.replica }) {
            $0.counter >= $1.counter ? $0 : $1
        }
    }
}

extension VersionVector: CustomStringConvertible {
    public var description: String {
        "[" + entries.map { "\($0.replica.hex):\($0.counter)" }.joined(separator: ", ") + "]"
    }
}

extension VersionVector: Codable {
    /// JSON form: an object from replica hex to counter, e.g. `{"00000000000000ff": 42}`.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let object = try container.decode([String: UInt64].self)
        var dots = [Dot]()
        dots.reserveCapacity(object.count)
        for (key, counter) in object {
            guard let replica = ReplicaID(hex: key) else {
                throw DecodingError.dataCorruptedError(
                    in: container, debugDescription: "expected replica IDs of 16 hex digits as keys, found \"\(key)\"")
            }
            dots.append(Dot(replica: replica, counter: counter))
        }
        // Sorted once: a dictionary comes in hash order, and adding entry by entry into the
        // sorted array costs O(n²) for a large (hostile) context.
        self = VersionVector(dots)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(Dictionary(uniqueKeysWithValues: entries.map { ($0.replica.hex, $0.counter) }))
    }
}
