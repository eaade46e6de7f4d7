/// The clock of one replica: hands out strictly increasing ``HLC`` stamps.
///
/// A value type with no clock of its own: callers pass the wall time in (`wall:` is
/// milliseconds since 1970), which keeps this pure and lets tests drive any skew they like.
/// Persist ``last`` and hand it back after a restart and stamps stay monotonic across restarts.
///
/// - Stamps never go backwards, even when the wall clock does: the clock keeps the larger
///   physical part and counts up the logical part.
/// - A remote stamp more than ``maxForwardDrift`` ahead of our wall clock is refused with
///   ``ClockError/driftExceeded``; otherwise one device with a clock a year fast would win
///   every conflict for a year.
/// - When the 16-bit logical counter would overflow, the physical part is advanced by one
///   millisecond instead, so the stamp still grows.
///
/// ```swift
/// var clock = HybridLogicalClock(replica: me, maxForwardDrift: 60_000)
/// let local = clock.now(wall: wallMillis)
/// let merged = try clock.receive(remoteStamp, wall: wallMillis)
/// ```
public struct HybridLogicalClock: Hashable, Sendable {
    public let replica: ReplicaID
    /// The largest stamp this clock has issued or observed.
    public private(set) var last: HLC
    /// How far (ms) a remote stamp may run ahead of the local wall clock.
    public var maxForwardDrift: UInt64

    /// Five minutes: generous for laptops with drifting clocks, small next to the hours or
    /// years of a misconfigured clock.
    public static let defaultMaxForwardDrift: UInt64 = 5 * 60 * 1000

    public init(replica: ReplicaID, last: HLC? = nil, maxForwardDrift: UInt64 = defaultMaxForwardDrift) {
        self.replica = replica
        self.last = last.map { HLC(time: $0.time, replica: replica) } ?? HLC(time: 0, replica: replica)
        self.maxForwardDrift = maxForwardDrift
    }

    /// A stamp for a local event, strictly greater than every stamp seen so far.
    public mutating func now(wall: UInt64) -> HLC {
        let wall = min(wall, HLC.maxPhysical)
        let next: HLC
        if wall > last.physical {
            next = HLC(physical: wall, logical: 0, replica: replica)
        } else {
            next = successor(physical: last.physical, logical: last.logical)
        }
        last = next
        return next
    }

    /// Observes a stamp from another replica and returns a local stamp greater than both it
    /// and every stamp seen before.
    ///
    /// - Throws: ``ClockError/driftExceeded`` when `remote` is more than ``maxForwardDrift``
    ///   ahead of `wall`; the clock is left unchanged.
    @discardableResult
    public mutating func receive(_ remote: HLC, wall: UInt64) throws(ClockError) -> HLC {
        let wall = min(wall, HLC.maxPhysical)
        try check(remote, wall: wall)
        let physical = max(wall, last.physical, remote.physical)
        let next: HLC
        if physical == last.physical && physical == remote.physical {
            next = successor(physical: physical, logical: max(last.logical, remote.logical))
        } else if physical == last.physical {
            next = successor(physical: physical, logical: last.logical)
        } else if physical == remote.physical {
            next = successor(physical: physical, logical: remote.logical)
        } else {
            next = HLC(physical: physical, logical: 0, replica: replica)
        }
        last = next
        return next
    }

    /// Checks a remote stamp against the drift bound without changing the clock; the server
    /// uses this to refuse single changes of a batch.
    public func check(_ remote: HLC, wall: UInt64) throws(ClockError) {
        let wall = min(wall, HLC.maxPhysical)
        let (limit, overflow) = wall.addingReportingOverflow(maxForwardDrift)
        if !overflow && remote.physical > limit {
            throw ClockError.driftExceeded(remote: remote, wall: wall, maxForwardDrift: maxForwardDrift)
        }
    }

    private func successor(physical: UInt64, logical: UInt16) -> HLC {
        if logical < HLC.maxLogical {
            return HLC(physical: physical, logical: logical + 1, replica: replica)
        }
        // 65,535 events in one millisecond: borrow the next millisecond rather than wrap.
        precondition(physical < HLC.maxPhysical, "HLC physical time exhausted")
        return HLC(physical: physical + 1, logical: 0, replica: replica)
    }
}

/// A stamp the clock refuses.
///
/// Carries a stable ``code``, a human ``message`` naming the stamp and the bound, and the
/// values involved, so the server can answer a per-change reason and the replica can say
/// which device's clock is wrong.
public struct ClockError: Error, Hashable, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Hashable, Sendable {
            case driftExceeded = "clock-drift-exceeded"
        }
        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// A stamp is further ahead of the receiver's wall clock than allowed.
        public static let driftExceeded = Code(.driftExceeded)
        public var description: String { base.rawValue }
    }

    public let code: Code
    public let remote: HLC
    public let wall: UInt64
    public let maxForwardDrift: UInt64

    public static func driftExceeded(remote: HLC, wall: UInt64, maxForwardDrift: UInt64) -> ClockError {
        ClockError(code: .driftExceeded, remote: remote, wall: wall, maxForwardDrift: maxForwardDrift)
    }

    /// How far ahead (ms) the refused stamp was.
    public var aheadBy: UInt64 { remote.physical &- wall }

    public var message: String {
        "stamp \(remote.text) from replica \(remote.replica.hex) is \(aheadBy) ms ahead of this clock; "
            + "at most \(maxForwardDrift) ms is accepted — check that device's clock"
    }

    public var description: String { "\(code): \(message)" }
}
