import CRDT

/// The replicas a delta names and the size of its largest causal kernel: what a server bounds
/// in every change a device pushes.
///
/// A replica is *named* by a causal context entry, a live stamp, an author record (its device
/// and its stamp) and an entity ID (its creator). Each is kept with the newest counter it is
/// named with, so a server can tell a replica a restore forgot (named only with stamps older
/// than the tenant's epoch) from one that never existed. A change naming a replica the tenant
/// never enrolled is a forgery, and one that every other replica would pull and keep; a
/// kernel with more context entries than the tenant has replicas cannot have been made by
/// merging real writes.
///
/// ```swift
/// var census = ReplicaCensus()
/// change.takeCensus(&census)
/// if census.largestContext > enrolledReplicas { refuse() }
/// ```
///
/// - Complexity: counting is O(n) in the dots of the delta; ``replicas`` is O(n log n).
public struct ReplicaCensus: Sendable {
    /// Every dot named, unsorted and with repeats (sorted once by ``replicas``).
    @usableFromInline var dots: [Dot] = []
    @usableFromInline var largest = (context: 0, live: 0)
    /// The most context entries of one kernel (one version vector).
    public var largestContext: Int { largest.context }
    /// The most live events of one kernel (concurrent values of one register or set element).
    public var mostLiveEvents: Int { largest.live }

    public init() {}

    /// Each replica named, with the newest counter it is named with.
    public var replicas: VersionVector { VersionVector(dots) }

    @inlinable
    mutating func note(_ dot: Dot) { dots.append(dot) }

    @inlinable
    mutating func note<Payload>(_ kernel: DotKernel<Payload>) {
        let sizes = kernel.sizes
        largest = (max(largest.context, sizes.context), max(largest.live, sizes.live))
        // Live stamps are covered by the context (the kernel's invariant): their replicas and
        // counters are among its entries.
        kernel.forEachContextEntry { dots.append($0) }
    }
}

extension Entity {
    /// Adds the replicas this entity (a delta) names, its ID's creator among them.
    @inlinable
    public func takeCensus(id: EntityID, _ census: inout ReplicaCensus) {
        census.note(Dot(replica: id.replica, counter: id.time))
        var taker = CensusTaker(census: census)
        census = ReplicaCensus()  // the taker holds the only copy: appends do not copy the array
        visitFields(&taker)
        census = taker.census
    }
}

extension TenantState {
    /// The census of every entity of this delta.
    public func census() -> ReplicaCensus {
        var census = ReplicaCensus()
        for (id, contact) in contacts.valueByKey { contact.takeCensus(id: id, &census) }
        for (id, note) in notes.valueByKey { note.takeCensus(id: id, &census) }
        for (id, entry) in schedule.valueByKey { entry.takeCensus(id: id, &census) }
        return census
    }
}

@usableFromInline struct CensusTaker: FieldVisitor {
    @usableFromInline var census: ReplicaCensus
    @inlinable init(census: ReplicaCensus) { self.census = census }
    @inlinable mutating func visit<F: FieldCRDT>(_ field: F) { field.takeCensus(&census) }
}
