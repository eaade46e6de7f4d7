import CRDT
import Domain
import Foundation
import GRDB
import StoreSupport

/// A store's state and clock as a sync step is prepared against them: a value, so the step can
/// be prepared on another thread while the store writes the previous one.
public struct CommitBase: Sendable {
    let state: TenantState
    /// The entities of steps prepared but not yet in `state`, the newest step first (the one
    /// being written, and the pulled batches already joined to the step after it).
    let newer: [TenantState]
    let clock: HybridLogicalClock
    /// Whether the step's pulled entities get audit rows (`StoreOptions.auditsPulls`).
    let auditsPulls: Bool

    /// This base with `step` — prepared against it, not yet in the store's memory — over it:
    /// what the step after `step` is prepared against.
    public func after(_ step: PreparedCommit) -> CommitBase {
        CommitBase(state: state, newer: [step.merged] + newer, clock: step.clock, auditsPulls: auditsPulls)
    }

    /// Everything a step needs but the writes: the pulled changes merged into one, merged with
    /// what the store holds, their encoded state, the clock after observing them, the session
    /// with its cursor advanced, encoded.
    public func prepare(
        session newSession: ReplicaSyncSession, actions: [ReplicaSyncSession.Action], wall: UInt64
    ) throws(StoreError) -> PreparedCommit {
        var session = newSession
        var clock = self.clock
        var applied = TenantState()
        var changes = [TenantState]()
        for action in actions {
            if case .apply(let change, let cursor) = action {
                applied.merge(change)
                session.didApplyPull(through: cursor)
                changes.append(change)
            }
        }
        // The pulled entities in ID order, each with the newest write it brings (its row's
        // `updated_hlc`, the clock below): found in one walk of each entity's fields.
        func sortedWithNewest<E: Entity>(_ deltas: ORMap<EntityID, E>) -> [(id: EntityID, delta: E, newest: Dot?)] {
            var sorted = [(id: EntityID, delta: E, newest: Dot?)]()
            sorted.reserveCapacity(deltas.count)
            for (id, delta) in deltas.valueByKey { sorted.append((id, delta, delta.newestDot)) }
            sorted.sort { $0.id < $1.id }
            return sorted
        }
        let pulledContacts = sortedWithNewest(applied.contacts)
        let pulledNotes = sortedWithNewest(applied.notes)
        let pulledSchedule = sortedWithNewest(applied.schedule)
        // Observe what we pulled so later local writes are stamped after it; a stamp beyond our
        // drift bound was accepted by the server, so trust the server's. Each batch's newest
        // stamp is observed in turn; one batch (a step's usual case) is `applied` itself, whose
        // newest stamp is the newest of its entities' (`TenantState.newestStamp` walked them
        // all once more).
        let clockWall = UInt64(max(0, Int64(wall) + session.clockOffset))
        if changes.count == 1 {
            var newest: Dot?
            func observe(_ dot: Dot?) {
                if let dot, newest.map({ dot.counter > $0.counter }) ?? true { newest = dot }
            }
            for row in pulledContacts { observe(row.newest) }
            for row in pulledNotes { observe(row.newest) }
            for row in pulledSchedule { observe(row.newest) }
            if let newest {
                _ = try? clock.receive(HLC(time: newest.counter, replica: newest.replica), wall: clockWall)
            }
        } else {
            for change in changes {
                if let newest = change.newestStamp { _ = try? clock.receive(newest, wall: clockWall) }
            }
        }
        // One pass over the pulled entities: each one merged with the entity as the store holds
        // it when this step is written (after the steps before it: one lookup), its writes and
        // its audit rows. (`TenantState.merged(with:over:)` does the merge alone; its own pass
        // looked every entity up once more, and this one once more in its result.)
        var writes = RowWrites()
        var audit = [PullAuditRow]()
        if auditsPulls { audit.reserveCapacity(applied.entityCount) }
        var devices = DeviceNames()
        let receivedAt = clock.last
        func prepareRows<E: RowEntity>(
            _ deltas: [(id: EntityID, delta: E, newest: Dot?)], newer: [ORMap<EntityID, E>],
            current: ORMap<EntityID, E>, plan: (inout RowWrites, E, E, PreparedRow) -> Void
        ) -> ORMap<EntityID, E> {
            var merged = [EntityID: E](minimumCapacity: deltas.count)
            // In ID order: each row's B-tree descent then starts where the last one ended (the
            // same pages, warm in the CPU's caches), and the audit rows, keyed by entity, go in
            // one after another (the trail's pages fill: 886 B per contact on disk, was 926).
            for (id, delta, newest) in deltas {
                let previous = TenantState.first(id, in: newer) ?? current[id]
                let entity = (previous ?? E()).merging(delta)
                merged[id] = entity
                let row = PreparedRow(
                    id, entity, delta: delta, newest: .some(newest), previous: previous, knowsPrevious: true)
                plan(&writes, entity, delta, row)
                if auditsPulls {
                    Self.pullAudit(
                        of: row, delta, before: previous ?? E(), after: entity, receivedAt: receivedAt,
                        devices: &devices, into: &audit)
                }
            }
            return ORMap(merged)
        }
        let merged = TenantState(
            contacts: prepareRows(pulledContacts, newer: newer.map(\.contacts), current: state.contacts) {
                $0.add($1, delta: $2, $3)
            },
            notes: prepareRows(pulledNotes, newer: newer.map(\.notes), current: state.notes) {
                $0.add($1, delta: $2, $3)
            },
            schedule: prepareRows(pulledSchedule, newer: newer.map(\.schedule), current: state.schedule) {
                $0.add($1, delta: $2, $3)
            })
        let finalSession = session
        let sessionJSON = try LocalStore.wrap("encoding the sync session") { try encodeJSON(finalSession) }
        // The pulled changes are in `merged` and `writes` now: the step does not keep them, so
        // they are freed here, on the thread that decoded them. (Kept, the writer freed them,
        // and each free of a block from this thread's heap waited for its lock while this side
        // allocated the next step: 2,200–2,800 lock waits per 100,000 pulled titles.)
        let kept = actions.filter {
            if case .apply = $0 { false } else { true }
        }
        return PreparedCommit(
            session: session, actions: kept, merged: merged, writes: writes,
            pullAudit: audit,
            clock: clock, sessionJSON: sessionJSON, wall: wall)
    }

    /// The audit rows of one pulled entity (`row` is its prepared row), appended to `rows`: one per person whose write
    /// this replica had not seen (``Entity/writers(of:unseenBy:)``), naming them — the device
    /// from the stamp, the user from the entity's authors — and the write's own time, not this
    /// replica, which only received it. A visible change carrying no unseen write (a set
    /// element's removal) is recorded as received, at `receivedAt`, from "(server)"; a change
    /// that changed nothing here (this replica's own edits coming back) gets no row.
    static func pullAudit<E: Entity>(
        of row: PreparedRow, _ delta: E, before: E, after entity: E, receivedAt: HLC, devices: inout DeviceNames,
        into rows: inout [PullAuditRow]
    ) {
        let writers = E.writers(of: delta, unseenBy: before)
        if writers.isEmpty {
            // Compared only here: a change with an unseen write changed something.
            if E.changedFields(touchedBy: delta, from: before, to: entity).isEmpty { return }
            rows.append(
                PullAuditRow(
                    at: receivedAt, user: "(server)", device: devices.name(of: receivedAt.replica),
                    kind: E.kind.rawValue,
                    id: row.id))
        }
        for dot in writers {
            rows.append(
                PullAuditRow(
                    at: HLC(time: dot.counter, replica: dot.replica), user: entity.user(of: dot.replica),
                    device: devices.name(of: dot.replica),
                    kind: E.kind.rawValue,
                    id: row.id))
        }
    }
}
