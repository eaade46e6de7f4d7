/// The causal kernel every register, set and map here is built on: live events (each a
/// ``HLC`` stamp with a payload) plus the causal context of what has been seen on this key.
///
/// The join is the one of dot stores in delta-state CRDTs: an event survives a merge when the
/// other side holds it too, or has never seen it. So an event disappears exactly when a side
/// that saw it removed or overwrote it, and concurrent events are all kept.
///
/// `MVRegister` is a kernel with the register's values as payloads; an `ORSet` is a kernel with
/// no payload per element. A replica's operations on one kernel are sequential and each one
/// covers every event it saw on that kernel, including its own earlier ones, which is what lets
/// the context be one ``VersionVector`` entry per replica (see ``VersionVector``).
///
/// The common case, one live event and nothing else seen, is stored inline without any heap
/// allocation; that is what keeps 100,000 records under a kilobyte each.
///
/// - Complexity: merge is O(n + m) in the live events and context entries, O(1) for two
///   single-event kernels.
/// - SeeAlso: Almeida, Shoker, Baquero, "Delta State Replicated Data Types" (JPDC 2018), §5.
public struct DotKernel<Payload: Hashable & Comparable & Sendable>: Sendable {
    /// One live event.
    public struct Event: Hashable, Sendable {
        public let stamp: HLC
        public let payload: Payload

        @inlinable
        public init(stamp: HLC, payload: Payload) {
            self.stamp = stamp
            self.payload = payload
        }
    }

    @usableFromInline
    internal enum Storage: Hashable, Sendable {
        /// One live event; the context is just its dot.
        case single(HLC, Payload)
        /// Live events sorted by stamp; a context that covers every one of them.
        case general([Event], VersionVector)
    }

    @usableFromInline internal var storage: Storage

    /// The empty kernel: nothing seen.
    @inlinable
    public init() {
        storage = .general([], VersionVector())
    }

    /// A kernel from parts; `context` is widened to cover `live`. Duplicate stamps keep the
    /// greatest payload, so even inconsistent input from a faulty peer merges deterministically.
    @inlinable
    public init(live: some Sequence<Event>, context: VersionVector) {
        let sorted = live.sorted { $0.stamp != $1.stamp ? $0.stamp < $1.stamp : $0.payload < $1.payload }
        // Of events with one stamp the last (largest payload) is kept; one pass, no removal from
        // the middle, so repeated stamps in hostile input cost O(n log n), not O(n²).
        var events = [Event]()
        events.reserveCapacity(sorted.count)
        for (index, event) in sorted.enumerated()
        where index + 1 == sorted.count || sorted[index + 1].stamp != event.stamp {
            events.append(event)
        }
        var widened = context
        Self.widen(&widened, by: events)
        self.init(normalizing: events, widened)
    }

    /// Adds the dots of `events` to `context`: entry by entry for the few events a kernel
    /// normally holds, sorted once and merged for many (each `add` may insert into the middle).
    @inlinable
    internal static func widen(_ context: inout VersionVector, by events: [Event]) {
        if events.count <= 8 {
            for event in events { context.add(event.stamp.dot) }
        } else {
            context.merge(VersionVector(events.lazy.map { $0.stamp.dot }))
        }
    }

    /// One live event whose dot is the whole context: the inline form.
    @inlinable
    internal init(single stamp: HLC, _ payload: Payload) {
        storage = .single(stamp, payload)
    }

    @inlinable
    internal init(normalizing live: [Event], _ context: VersionVector) {
        if live.count == 1, context.count == 1, context.entries[0] == live[0].stamp.dot {
            storage = .single(live[0].stamp, live[0].payload)
        } else {
            storage = .general(live, context)
        }
    }

    /// Live events in stamp order.
    @inlinable
    public var live: [Event] {
        switch storage {
        case .single(let stamp, let payload): [Event(stamp: stamp, payload: payload)]
        case .general(let live, _): live
        }
    }

    /// Everything seen on this key.
    @inlinable
    public var context: VersionVector {
        switch storage {
        case .single(let stamp, _): VersionVector([stamp.dot])
        case .general(_, let context): context
        }
    }

    /// `context.newestDot`, without building the context of a single event.
    @inlinable
    public var newestDot: Dot? {
        switch storage {
        case .single(let stamp, _): stamp.dot
        case .general(_, let context): context.newestDot
        }
    }

    /// True when this kernel has seen an event of a replica other than `replica` (its context
    /// covers every live event), without building the context of a single event.
    @inlinable
    public func hasSeen(anyReplicaBut replica: ReplicaID) -> Bool {
        switch storage {
        case .single(let stamp, _): stamp.replica != replica
        case .general(_, let context): context.entries.contains { $0.replica != replica }
        }
    }

    /// `context.covers(dot)`, without building the context of a single event.
    @inlinable
    public func covers(_ dot: Dot) -> Bool {
        switch storage {
        case .single(let stamp, _): (stamp.replica == dot.replica ? stamp.time : 0) >= dot.counter
        case .general(_, let context): context.covers(dot)
        }
    }

    /// Calls `body` with the stamp of each live event, in stamp order, without building `live`.
    /// Calls `body` with each entry of ``context``, without building the context of a single
    /// event.
    @inlinable
    public func forEachContextEntry(_ body: (Dot) -> Void) {
        switch storage {
        case .single(let stamp, _): body(stamp.dot)
        case .general(_, let context): for entry in context.entries { body(entry) }
        }
    }

    /// How many entries ``context`` has and how many live events there are, without building
    /// either.
    @inlinable
    public var sizes: (context: Int, live: Int) {
        switch storage {
        case .single: (1, 1)
        case .general(let live, let context): (context.count, live.count)
        }
    }

    @inlinable
    public func forEachLiveStamp(_ body: (HLC) -> Void) {
        switch storage {
        case .single(let stamp, _): body(stamp)
        case .general(let live, _): for event in live { body(event.stamp) }
        }
    }

    @inlinable
    public var isEmpty: Bool {
        switch storage {
        case .single: false
        case .general(let live, _): live.isEmpty
        }
    }

    /// The live event with the greatest stamp: the deterministic winner.
    @inlinable
    public var winner: Event? {
        switch storage {
        case .single(let stamp, let payload): Event(stamp: stamp, payload: payload)
        case .general(let live, _): live.last
        }
    }

    @inlinable
    public var liveCount: Int {
        switch storage {
        case .single: 1
        case .general(let live, _): live.count
        }
    }

    /// Replaces every live event with one new event stamped `stamp`, and returns the delta.
    ///
    /// - Precondition: `stamp` is newer than every stamp of its replica seen here (the replica's
    ///   ``HybridLogicalClock`` guarantees this).
    @inlinable @discardableResult
    public mutating func write(_ payload: Payload, at stamp: HLC) -> DotKernel {
        precondition(!context.covers(stamp.dot), "stamp \(stamp) is not newer than what this replica has seen")
        // The delta's context names only the events it replaces: enough to remove them anywhere.
        var deltaContext = VersionVector(live.map { $0.stamp.dot })
        deltaContext.add(stamp.dot)
        let delta = DotKernel(normalizing: [Event(stamp: stamp, payload: payload)], deltaContext)
        merge(delta)
        return delta
    }

    /// Removes every live event (observed-remove) and returns the delta; events this replica
    /// has not seen survive the delta wherever it is merged.
    @inlinable @discardableResult
    public mutating func removeAll() -> DotKernel {
        let delta = DotKernel(normalizing: [], VersionVector(live.map { $0.stamp.dot }))
        merge(delta)
        return delta
    }
}

extension DotKernel: Hashable {
    @inlinable
    public static func == (lhs: DotKernel, rhs: DotKernel) -> Bool {
        switch (lhs.storage, rhs.storage) {
        case (.single(let a, let pa), .single(let b, let pb)): a == b && pa == pb
        case (.general(let la, let ca), .general(let lb, let cb)): la == lb && ca == cb
        default: false
        }
    }

    @inlinable
    public func hash(into hasher: inout Hasher) {
        hasher.combine(storage)
    }
}

extension DotKernel: Mergeable {
    @inlinable
    public var isBottom: Bool {
        if case .general(let live, let context) = storage { return live.isEmpty && context.isEmpty }
        return false
    }

    @inlinable
    public mutating func merge(_ other: DotKernel) {
        switch (storage, other.storage) {
        case (.single(let a, let pa), .single(let b, let pb)):
            // The hot path of "one field written again": no allocation.
            if a == b {
                if pb > pa { storage = .single(a, pb) }
            } else if a.replica == b.replica {
                if b.time > a.time { storage = .single(b, pb) }
            } else {
                let events = [Event(stamp: a, payload: pa), Event(stamp: b, payload: pb)].sorted { $0.stamp < $1.stamp }
                storage = .general(events, VersionVector([a.dot, b.dot]))
            }
        case (.single(let a, _), .general(let otherLive, let otherContext))
        where otherContext.covers(a.dot) && !otherLive.contains(where: { $0.stamp == a }):
            // Another replica overwrote what we hold (the usual edit after a sync): theirs wins
            // whole, and no arrays are built.
            self = other
        case (.general(let live, let context), .single(let b, _))
        where context.covers(b.dot) && !live.contains(where: { $0.stamp == b }):
            // Old news: we already saw that event superseded.
            return
        case (_, .general(let otherLive, let otherContext)) where otherLive.isEmpty && otherContext.isEmpty:
            return
        case (.general(let live, let context), _) where live.isEmpty && context.isEmpty:
            self = other
        default:
            self = DotKernel.join(self, other)
        }
    }

    @inlinable
    internal static func join(_ a: DotKernel, _ b: DotKernel) -> DotKernel {
        let liveA = a.live
        let liveB = b.live
        let contextA = a.context
        let contextB = b.context
        var result = [Event]()
        result.reserveCapacity(liveA.count + liveB.count)
        var i = 0
        var j = 0
        while i < liveA.count || j < liveB.count {
            if j == liveB.count || (i < liveA.count && liveA[i].stamp < liveB[j].stamp) {
                if !contextB.covers(liveA[i].stamp.dot) { result.append(liveA[i]) }
                i += 1
            } else if i == liveA.count || liveB[j].stamp < liveA[i].stamp {
                if !contextA.covers(liveB[j].stamp.dot) { result.append(liveB[j]) }
                j += 1
            } else {
                // Same event on both sides: it stays. Equal stamps with different payloads only
                // come from a faulty peer; the greater payload wins so the merge stays a join.
                result.append(liveA[i].payload >= liveB[j].payload ? liveA[i] : liveB[j])
                i += 1
                j += 1
            }
        }
        return DotKernel(normalizing: result, contextA.merging(contextB))
    }
}
