import CRDT

/// Bounds of one push or pull.
public struct SyncLimits: Hashable, Sendable, Codable {
    public var pushChanges = 200
    public var pushBytes = 512 * 1024
    public var pullChanges = 500
    public var pullBytes = 1024 * 1024

    public init() {}
}

/// The replica side of the sync protocol, sans I/O: what it knows of the server (epoch, pull
/// cursor, push checkpoint, clock offset), the next message to send, and what to do with an
/// answer.
///
/// The rules it enforces:
/// - the pull cursor advances only through ``didApplyPull(through:)``, called after the pulled
///   changes are durably applied;
/// - outbox changes are removed only when an acknowledgement covers them;
/// - a server epoch different from the one last seen means the server was restored: the cursor
///   restarts at 0 and everything the replica holds is pushed again.
///
/// The session's new value and the effects of the actions it returns must be made durable
/// together, in one transaction: a crash between them would, for example, record the new
/// epoch but lose the order to push everything again. (The domain fuzzer found exactly that.)
public struct ReplicaSyncSession: Equatable, Sendable, Codable {
    public let replica: ReplicaID
    public private(set) var epoch: ServerEpoch?
    public private(set) var pullCursor: UInt64 = 0
    /// The highest local sequence the server has processed.
    public private(set) var pushCheckpoint: UInt64 = 0
    /// Server clock minus local clock, ms, from the last answer: add it to the wall clock when
    /// stamping, so a wrong local clock does not make stamps the server refuses.
    public private(set) var clockOffset: Int64 = 0
    public var limits = SyncLimits()

    public init(replica: ReplicaID, epoch: ServerEpoch? = nil, pullCursor: UInt64 = 0, pushCheckpoint: UInt64 = 0) {
        self.replica = replica
        self.epoch = epoch
        self.pullCursor = pullCursor
        self.pushCheckpoint = pushCheckpoint
    }

    /// What the replica's storage and transport must do next.
    public enum Action: Equatable, Sendable {
        /// Remove these acknowledged changes from the outbox (in the same transaction as the
        /// session's new checkpoint).
        case removeFromOutbox([UInt64])
        /// The server refused these changes; keep them and say why (see the protocol doc).
        case keepRejected([Rejection])
        /// Apply this change durably, then call `didApplyPull(through:)` with `cursor`.
        case apply(TenantState, cursor: UInt64)
        /// The server's data was restored (new epoch): push the whole local state again.
        case repushEverything
        /// More changes are waiting on the server: pull again.
        case pullAgain
    }

    /// The next push: the oldest outbox changes, bounded by count and bytes (at least one), or
    /// `nil` when the outbox is empty.
    public func nextPush(outbox: [PushChange]) -> PushBatch? {
        guard !outbox.isEmpty else { return nil }
        var changes = [PushChange]()
        var bytes = 0
        for change in outbox.sorted(by: { $0.localSequence < $1.localSequence }) {
            let size = change.change.encodedBlob().count
            if !changes.isEmpty && (changes.count >= limits.pushChanges || bytes + size > limits.pushBytes) { break }
            changes.append(change)
            bytes += size
        }
        return PushBatch(replica: replica, epoch: epoch, changes: changes)
    }

    /// Handles the acknowledgement of `batch`. `sentAt`/`receivedAt` are the local wall clock (ms)
    /// around the round trip, for the clock offset.
    ///
    /// An answer to a batch sent under an epoch the session has since left is stale (it arrived
    /// late): its epoch and clock are ignored, and its changes leave the outbox only if the
    /// answer comes from the epoch the session is in now.
    public mutating func receive(_ ack: PushAck, for batch: PushBatch, sentAt: UInt64, receivedAt: UInt64) -> [Action] {
        let stale = batch.epoch != epoch
        var actions = [Action]()
        if !stale {
            updateOffset(serverTime: ack.serverTime, sentAt: sentAt, receivedAt: receivedAt)
            if observe(ack.epoch) { actions.append(.repushEverything) }
        }
        // An acknowledgement from a server epoch we are not in says nothing about the current
        // server, which may be a restore that lacks those changes: they stay in the outbox and
        // go again (harmlessly, if they were not needed). The long fuzz tier found a change lost
        // this way: acknowledged by the old epoch after the replica had moved to the new one.
        guard ack.epoch == epoch else { return actions }
        let rejected = Set(ack.rejected.map(\.localSequence))
        let done = batch.changes.map(\.localSequence).filter { $0 <= ack.processedThrough && !rejected.contains($0) }
        if !done.isEmpty { actions.append(.removeFromOutbox(done)) }
        if !ack.rejected.isEmpty { actions.append(.keepRejected(ack.rejected)) }
        if !stale { pushCheckpoint = max(pushCheckpoint, ack.processedThrough) }
        return actions
    }

    /// The next pull, from the cursor.
    public func nextPull() -> PullRequest {
        PullRequest(epoch: epoch, cursor: pullCursor, maxChanges: limits.pullChanges, maxBytes: limits.pullBytes)
    }

    /// Handles the response to `request`: the changes to apply (merged into one), then whether
    /// to pull again.
    ///
    /// A response to a request made from another cursor or epoch than the current ones is stale
    /// (it arrived after a retry moved on): its changes are still current states and safe to
    /// merge, but it must not move the cursor or the epoch, so it is applied with the current
    /// cursor.
    public mutating func receive(
        _ response: PullResponse, for request: PullRequest, sentAt: UInt64, receivedAt: UInt64
    )
        -> [Action]
    {
        var merged = TenantState()
        if response.changes.count > 1 {
            // A server sends one change per entity: merged one by one, the maps grew from one
            // entry, copied and rehashed at every doubling.
            var counts = (contacts: 0, notes: 0, schedule: 0)
            for change in response.changes {
                counts.contacts += change.change.contacts.count
                counts.notes += change.change.notes.count
                counts.schedule += change.change.schedule.count
            }
            merged.reserveCapacity(contacts: counts.contacts, notes: counts.notes, schedule: counts.schedule)
        }
        for change in response.changes { merged.merge(change.change) }
        guard request.cursor == pullCursor && request.epoch == epoch else {
            return merged.isBottom ? [] : [.apply(merged, cursor: pullCursor)]
        }
        updateOffset(serverTime: response.serverTime, sentAt: sentAt, receivedAt: receivedAt)
        var actions = [Action]()
        if observe(response.epoch) { actions.append(.repushEverything) }
        actions.append(.apply(merged, cursor: response.nextCursor))
        if response.hasMore { actions.append(.pullAgain) }
        return actions
    }

    /// Starts pulling from the beginning of the current epoch: the server refused the cursor as
    /// older than its retention (this replica may have missed deletions whose records are gone).
    /// The store must empty its state in the same transaction, so what it pulls next is all
    /// there is; it may do so only once the outbox is pushed.
    public mutating func restartPull() {
        pullCursor = 0
    }

    /// Records that everything up to `cursor` is durably applied.
    public mutating func didApplyPull(through cursor: UInt64) {
        pullCursor = cursor
    }

    /// This session after the replica took a bootstrap image (a prebuilt replica file of the
    /// server's state, see docs/sync-protocol.md): the image's epoch and pull cursor, this
    /// replica's own identity, push checkpoint, clock offset and limits. Nil when this session
    /// has pulled or pushed anything already — an image replaces only a replica with nothing
    /// in it, or it would drop what the replica holds.
    public func adoptingImage(of image: ReplicaSyncSession) -> ReplicaSyncSession? {
        guard epoch == nil, pullCursor == 0, pushCheckpoint == 0, let imageEpoch = image.epoch else { return nil }
        var adopted = self
        adopted.epoch = imageEpoch
        adopted.pullCursor = image.pullCursor
        return adopted
    }

    /// This session taking a bootstrap image right after a re-bootstrap (`restartPull`: the
    /// server refused its cursor as older than its retention): the image's cursor, everything
    /// else its own — the push checkpoint above all, so what it pushes next is numbered past what
    /// the server has seen. Nil unless it is at cursor 0 of the image's own epoch: after a
    /// restore (another epoch) it must re-push everything, which an image would skip.
    public func rebootstrappingFromImage(of image: ReplicaSyncSession) -> ReplicaSyncSession? {
        guard pullCursor == 0, let epoch, let imageEpoch = image.epoch, epoch == imageEpoch else { return nil }
        var adopted = self
        adopted.pullCursor = image.pullCursor
        return adopted
    }

    /// Adopts the server's epoch; true when it replaced a different one (a restore).
    private mutating func observe(_ serverEpoch: ServerEpoch) -> Bool {
        defer { epoch = serverEpoch }
        guard let epoch, epoch != serverEpoch else { return false }
        pullCursor = 0
        pushCheckpoint = 0
        return true
    }

    /// The longest round trip (ms) whose answer always sets the clock offset. The estimate is off
    /// by up to half the round trip, so an answer that took minutes (a retry, a stalled link)
    /// would skew new stamps by minutes — enough for the server to refuse them. The domain
    /// fuzzer's long tier found exactly that.
    public static let maxRoundTripForOffset: UInt64 = 10_000

    /// Sets the offset from an answer: always from a quick one; from a slower one only when the
    /// offset held now is certainly worse — it differs from the new estimate by more than the
    /// whole round trip, while the estimate is off by at most half of it. So a laptop a year
    /// fast on a slow or busy link still learns its offset (the clock-skew drill found one that
    /// never did while every answer took over 10 s), and a stalled link cannot skew a good one.
    private mutating func updateOffset(serverTime: UInt64, sentAt: UInt64, receivedAt: UInt64) {
        guard receivedAt >= sentAt else { return }
        let roundTrip = receivedAt - sentAt
        let estimate = Int64(serverTime) - Int64(sentAt / 2 + receivedAt / 2)
        guard roundTrip <= Self.maxRoundTripForOffset || (estimate - clockOffset).magnitude > roundTrip else { return }
        clockOffset = estimate
    }
}
