import CRDT
import Domain

/// A replica for protocol tests: its state, its sync session, its outbox, its clock, and the
/// changes the server acknowledged (for "every acknowledged change is present").
/// It does what `Replica` does, minus SQLite and HTTP.
public struct SimulatedReplica {
    public let user: String
    public var state = TenantState()
    public var session: ReplicaSyncSession
    public private(set) var outbox: [PushChange] = []
    public private(set) var nextSequence: UInt64 = 1
    public var clock: HybridLogicalClock
    /// How far this device's wall clock is off, ms.
    public var skew: Int64
    /// Changes the server acknowledged, for the "nothing acknowledged is lost" check.
    public private(set) var acknowledged: [TenantState] = []
    public private(set) var rejected: [Rejection] = []
    public var settings = DomainSettings()

    public init(replica: ReplicaID, user: String, skew: Int64 = 0, maxForwardDrift: UInt64 = 3_600_000) {
        self.user = user
        self.skew = skew
        session = ReplicaSyncSession(replica: replica)
        clock = HybridLogicalClock(replica: replica, maxForwardDrift: maxForwardDrift)
    }

    public var replica: ReplicaID { session.replica }

    /// This device's idea of the time: its wall clock corrected by the server's offset hint.
    public func localTime(_ wall: UInt64) -> UInt64 {
        UInt64(max(0, Int64(wall) + skew + session.clockOffset))
    }

    /// Runs a command with a fresh stamp; a change goes to the outbox.
    @discardableResult
    public mutating func write(
        wall: UInt64, _ command: (inout TenantState, WriteContext) throws(ValidationError) -> TenantState
    ) throws(ValidationError) -> TenantState {
        let context = WriteContext(
            author: Author(user: user, device: replica), stamp: clock.now(wall: localTime(wall)), settings: settings)
        let delta = try command(&state, context)
        if !delta.isBottom {
            outbox.append(PushChange(localSequence: nextSequence, change: delta))
            nextSequence += 1
        }
        return delta
    }

    /// Carries out what the session asked for.
    public mutating func perform(_ actions: [ReplicaSyncSession.Action], wall: UInt64, batch: PushBatch? = nil) {
        for action in actions {
            switch action {
            case .removeFromOutbox(let sequences):
                let done = Set(sequences)
                acknowledged += outbox.filter { done.contains($0.localSequence) }.map(\.change)
                outbox.removeAll { done.contains($0.localSequence) }
            case .keepRejected(let rejections):
                rejected += rejections
                let refused = Set(rejections.map(\.localSequence))
                outbox.removeAll { refused.contains($0.localSequence) }
            case .apply(let change, let cursor):
                if let newest = change.newestStamp { _ = try? clock.receive(newest, wall: localTime(wall)) }
                state.merge(change)
                session.didApplyPull(through: cursor)
            case .repushEverything:
                for chunk in state.chunked(entitiesPerChange: 50) {
                    outbox.append(PushChange(localSequence: nextSequence, change: chunk))
                    nextSequence += 1
                }
            case .pullAgain:
                break
            }
        }
    }

    /// Pushes everything and pulls until caught up, straight against `ledger` (no faults).
    public mutating func sync(with ledger: inout TenantLedger, wall: UInt64) {
        var rounds = 0
        while let batch = session.nextPush(outbox: outbox) {
            let ack = ledger.receive(batch, wall: wall)
            perform(session.receive(ack, for: batch, sentAt: localTime(wall), receivedAt: localTime(wall)), wall: wall)
            rounds += 1
            precondition(rounds < 10_000, "push does not make progress")
        }
        while true {
            let request = session.nextPull()
            let response = ledger.respond(to: request, wall: wall)
            let actions = session.receive(response, for: request, sentAt: localTime(wall), receivedAt: localTime(wall))
            perform(actions, wall: wall)
            if actions.contains(.repushEverything) { return sync(with: &ledger, wall: wall) }
            if !actions.contains(.pullAgain) { break }
            rounds += 1
            precondition(rounds < 10_000, "pull does not make progress")
        }
    }
}
