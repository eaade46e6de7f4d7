import CRDT

/// The server side of the sync protocol for one tenant, sans I/O: the merged state, the
/// per-tenant sequence, and which sequence last changed each field of each entity.
///
/// `receive(_:wall:)` applies a push batch and answers its acknowledgement;
/// `respond(to:wall:)` answers a pull with the *current* state of the fields changed after the
/// cursor. The real server persists exactly this bookkeeping in SQLite and sends the
/// acknowledgement only once the transaction is durable; this value type is the reference the
/// protocol tests run against.
public struct TenantLedger: Sendable {
    struct LogEntry: Sendable {
        let sequence: UInt64
        let entity: EntityRef
        let fields: FieldMask
    }

    public private(set) var epoch: ServerEpoch
    public private(set) var state = TenantState()
    /// The last sequence number given to a change.
    public private(set) var sequence: UInt64 = 0
    public var maxForwardDrift: UInt64
    /// The server's cap on changes per pull, whatever the replica asks for.
    public var maxPullChanges = 1_000
    private var fieldSequences: [EntityRef: [UInt64]] = [:]
    private var log: [LogEntry] = []

    public init(epoch: ServerEpoch, maxForwardDrift: UInt64 = HybridLogicalClock.defaultMaxForwardDrift) {
        self.epoch = epoch
        self.maxForwardDrift = maxForwardDrift
    }

    /// Starts a new epoch over the same data, as after a restore from backup; sequence numbers
    /// restart, and every entity is logged again so a replica pulling from 0 gets everything.
    public mutating func startNewEpoch(_ epoch: ServerEpoch) {
        let current = state
        self = TenantLedger(epoch: epoch, maxForwardDrift: maxForwardDrift)
        _ = apply(current)
    }

    // MARK: Push

    /// Applies the changes of `batch` that pass the checks and acknowledges the batch.
    ///
    /// Each change is checked on its own: one stamped beyond the drift bound is refused with a
    /// reason, and the rest of the batch is applied. Re-sent changes are harmless: merging is
    /// idempotent, and a change that alters nothing gets no sequence number.
    public mutating func receive(_ batch: PushBatch, wall: UInt64) -> PushAck {
        var rejected = [Rejection]()
        let clock = HybridLogicalClock(replica: ReplicaID(0), maxForwardDrift: maxForwardDrift)
        for change in batch.changes {
            if let newest = change.change.newestStamp {
                do {
                    try clock.check(newest, wall: wall)
                } catch {
                    rejected.append(
                        Rejection(
                            localSequence: change.localSequence, code: error.code.description, reason: error.message))
                    continue
                }
            }
            _ = apply(change.change)
        }
        return PushAck(
            epoch: epoch, processedThrough: batch.changes.map(\.localSequence).max() ?? 0, rejected: rejected,
            serverTime: wall)
    }

    /// Merges `change`, giving a new sequence number to each entity whose fields it altered.
    /// Returns the sequence numbers given.
    @discardableResult
    public mutating func apply(_ change: TenantState) -> [UInt64] {
        var given = [UInt64]()
        given += apply(change.contacts, \.contacts)
        given += apply(change.notes, \.notes)
        given += apply(change.schedule, \.schedule)
        return given
    }

    private mutating func apply<E: Entity>(
        _ delta: ORMap<EntityID, E>, _ path: WritableKeyPath<TenantState, ORMap<EntityID, E>>
    )
        -> [UInt64]
    {
        var given = [UInt64]()
        for id in delta.sortedKeys {
            let entityDelta = delta[id]!
            let before = state[keyPath: path][id] ?? E()
            let after = before.merging(entityDelta)
            let changed = E.changedFields(touchedBy: entityDelta, from: before, to: after)
            if changed.isEmpty { continue }
            sequence += 1
            state[keyPath: path].merge(ORMap([id: entityDelta]))
            let ref = EntityRef(E.kind, id)
            var sequences = fieldSequences[ref] ?? Array(repeating: 0, count: E.fields.count)
            for index in E.fields.indices where changed.contains(.field(index)) { sequences[index] = sequence }
            fieldSequences[ref] = sequences
            log.append(LogEntry(sequence: sequence, entity: ref, fields: changed))
            given.append(sequence)
        }
        return given
    }

    // MARK: Pull

    /// The current state of what changed after the request's cursor, in sequence order, at most
    /// `maxChanges` changes and about `maxBytes` bytes (always at least one change, so a single
    /// large entity cannot stall a replica).
    ///
    /// A field changed several times after the cursor is sent once, with its current state: a
    /// log entry whose fields were all changed again later is skipped.
    public func respond(to request: PullRequest, wall: UInt64) -> PullResponse {
        // A cursor from another epoch means nothing here: start from the beginning.
        let cursor = request.epoch == epoch ? request.cursor : 0
        var low = 0
        var high = log.count
        while low < high {
            let mid = (low + high) / 2
            if log[mid].sequence <= cursor { low = mid + 1 } else { high = mid }
        }
        let maxChanges = max(1, min(request.maxChanges, maxPullChanges))
        var changes = [PulledChange]()
        var bytes = 0
        var next = cursor
        var index = low
        while index < log.count {
            let entry = log[index]
            let sequences = fieldSequences[entry.entity]!
            var live = FieldMask()
            for bit in sequences.indices where entry.fields.contains(.field(bit)) && sequences[bit] == entry.sequence {
                live.insert(.field(bit))
            }
            if !live.isEmpty {
                let change = state.projection(of: entry.entity, fields: live)
                let size = change.encodedBlob().count
                if !changes.isEmpty && (changes.count >= maxChanges || bytes + size > request.maxBytes) { break }
                changes.append(PulledChange(sequence: entry.sequence, change: change))
                bytes += size
            }
            next = entry.sequence
            index += 1
        }
        return PullResponse(
            epoch: epoch, changes: changes, nextCursor: next, hasMore: index < log.count, serverTime: wall)
    }
}

extension TenantState {
    /// The newest stamp anywhere in this state (live events and contexts).
    public var newestStamp: HLC? {
        var newest: Dot?
        func visit<E: Entity>(_ map: ORMap<EntityID, E>) {
            for entity in map.valueByKey.values {
                if let dot = entity.newestDot, newest.map({ dot.counter > $0.counter }) ?? true { newest = dot }
            }
        }
        visit(contacts)
        visit(notes)
        visit(schedule)
        return newest.map { HLC(time: $0.counter, replica: $0.replica) }
    }

    /// The entities `change` touches, each merged with its current state here: what a store
    /// writes for them, without copying the whole state.
    ///
    /// An entity one of `newer` holds is taken from the first that holds it rather than from
    /// this state: `newer` are results of earlier `merged(with:)` calls that are not in this
    /// state yet, the newest first (a store prepares the next pulled batches while it writes the
    /// previous ones).
    public func merged(with change: TenantState, over newer: [TenantState] = []) -> TenantState {
        func merge<E: Entity>(
            _ current: ORMap<EntityID, E>, _ newer: [ORMap<EntityID, E>], _ delta: ORMap<EntityID, E>
        ) -> ORMap<EntityID, E> {
            var result = [EntityID: E]()
            result.reserveCapacity(delta.count)
            for (id, entity) in delta.valueByKey {
                result[id] = (Self.first(id, in: newer) ?? current[id] ?? E()).merging(entity)
            }
            return ORMap(result)
        }
        return TenantState(
            contacts: merge(contacts, newer.map(\.contacts), change.contacts),
            notes: merge(notes, newer.map(\.notes), change.notes),
            schedule: merge(schedule, newer.map(\.schedule), change.schedule))
    }

    /// The value at `id` in the first of `maps` that holds one.
    @inlinable
    public static func first<E>(_ id: EntityID, in maps: [ORMap<EntityID, E>]) -> E? {
        for map in maps { if let value = map[id] { return value } }
        return nil
    }

    /// The given fields of one entity, as a change.
    public func projection(of entity: EntityRef, fields: FieldMask) -> TenantState {
        var result = TenantState()
        switch entity.kind {
        case .contact: result.contacts = ORMap([entity.id: contacts[entity.id]!.restricted(to: fields)])
        case .note: result.notes = ORMap([entity.id: notes[entity.id]!.restricted(to: fields)])
        case .schedule: result.schedule = ORMap([entity.id: schedule[entity.id]!.restricted(to: fields)])
        }
        return result
    }

    /// This whole state cut into changes of at most `entitiesPerChange` entities: what a replica
    /// re-pushes after the server's epoch changed.
    public func chunked(entitiesPerChange: Int) -> [TenantState] {
        precondition(entitiesPerChange > 0)
        var chunks = [TenantState]()
        var current = TenantState()
        var count = 0
        func add(_ piece: TenantState) {
            current.merge(piece)
            count += 1
            if count == entitiesPerChange {
                chunks.append(current)
                current = TenantState()
                count = 0
            }
        }
        for id in contacts.sortedKeys {
            var piece = TenantState()
            piece.contacts = ORMap([id: contacts[id]!])
            add(piece)
        }
        for id in notes.sortedKeys {
            var piece = TenantState()
            piece.notes = ORMap([id: notes[id]!])
            add(piece)
        }
        for id in schedule.sortedKeys {
            var piece = TenantState()
            piece.schedule = ORMap([id: schedule[id]!])
            add(piece)
        }
        if count > 0 { chunks.append(current) }
        return chunks
    }
}
