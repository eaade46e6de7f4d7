import CRDT
import Domain
import Foundation
import LocalStorage
import StoreSupport
import Synchronization

/// Moves protocol messages to the server and back. `HTTPSyncClient` implements it over HTTP/2
/// and TLS, with the server's certificate pinned; tests use an in-memory ledger behind a
/// transport with injected faults (`InProcessTransport`).
public protocol SyncTransport {
    /// Sends an encoded `PushBatch`, returns the encoded `PushAck`.
    nonisolated(nonsending) func push(_ batch: [UInt8]) async throws -> [UInt8]
    /// Sends an encoded `PullRequest`, returns the encoded `PullResponse`.
    nonisolated(nonsending) func pull(_ request: [UInt8]) async throws -> [UInt8]
}

/// A transport that may be used from two tasks at once. The engine then asks for the next pull
/// batch while it writes the current one, and prepares it (`CommitBase.prepare`) on another
/// thread as soon as it arrives: the server's work, the network and the CPU half of the apply
/// overlap SQLite's half (an initial sync is a chain of hundreds of pulls).
public protocol ConcurrentSyncTransport: SyncTransport, Sendable {}

/// A transport that can also fetch the tenant's bootstrap image: a replica file of the server's
/// state that a fresh replica takes instead of pulling everything (`LocalStore.adoptImage`).
public protocol ImageSyncTransport: SyncTransport {
    /// Downloads the newest image into `path` (complete and fsynced).
    nonisolated(nonsending) func downloadImage(to path: String) async throws -> ImageDownload
}

/// What an image download brought.
public enum ImageDownload: Equatable, Sendable {
    /// The server has no image to give.
    case unavailable
    /// The file is in place. `verified`: its SHA-256 matched the one the server sent, which
    /// the server takes of a file it checked (`PRAGMA quick_check`): the replica need not check
    /// the file again.
    case downloaded(verified: Bool)
}

/// What one sync moved.
public struct SyncReport: Equatable, Sendable, Codable {
    public var pushedChanges = 0
    public var pushBatches = 0
    public var rejectedChanges = 0
    public var pulledChanges = 0
    public var pullBatches = 0
    /// The transactions the pulled batches were written in: fewer than the batches when
    /// batches that arrived while the previous ones were written were joined into one.
    public var pullTransactions = 0
    public var epochChanged = false
    /// The server refused the cursor as older than its retention; the replica emptied its state
    /// and pulled everything again.
    public var rebootstrapped = false
    /// Entities taken from a bootstrap image (a fresh replica), before the pulls.
    public var imageEntities: Int?
    /// Why an image the server sent was not taken (the replica pulled everything instead).
    public var imageRefusal: String?

    public init() {}

    /// Adds what another (partial) sync moved.
    mutating func add(_ other: SyncReport) {
        pushedChanges += other.pushedChanges
        pushBatches += other.pushBatches
        rejectedChanges += other.rejectedChanges
        pulledChanges += other.pulledChanges
        pullBatches += other.pullBatches
        pullTransactions += other.pullTransactions
        epochChanged = epochChanged || other.epochChanged
        rebootstrapped = rebootstrapped || other.rebootstrapped
        imageEntities = other.imageEntities ?? imageEntities
        imageRefusal = other.imageRefusal ?? imageRefusal
    }
}

/// Push then pull until caught up: the `replica-cli sync` loop, over any transport.
///
/// Every step commits the session and the effects of the answer in one transaction, so a cut
/// at any point — before a request, after the server committed but before the answer, in the
/// middle of a response — loses nothing and duplicates nothing: the next attempt resumes from
/// what is durable. A failed exchange is thrown to the caller, who retries (with backoff).
public struct SyncEngine {
    public let store: LocalStore
    public let transport: any SyncTransport
    /// The local wall clock, ms since 1970 (injected so tests control time).
    public var wall: () -> UInt64
    /// Ask for the next pull batch while applying the current one, when the transport allows
    /// concurrent use (`ConcurrentSyncTransport`). Off only to measure what it gains.
    public var pipelinesPulls = true
    /// At most this many pulled changes are written in one transaction. Batches that arrive
    /// while the previous ones are written are joined, up to this, and written together (each
    /// commit's fsync and the pages it writes again are paid once for all of them); when the
    /// writing keeps up with the network, each batch is written on its own as it arrives.
    /// 1 writes every batch in its own transaction.
    public var maxChangesPerTransaction = 5_000
    /// A fresh replica takes the server's bootstrap image when the transport can fetch one.
    /// Off only to measure what it gains, or to test the pull path.
    public var takesImages = true

    public init(store: LocalStore, transport: any SyncTransport, wall: @escaping () -> UInt64 = SyncEngine.systemWall) {
        self.store = store
        self.transport = transport
        self.wall = wall
    }

    public static func systemWall() -> UInt64 {
        UInt64(max(0, Date().timeIntervalSince1970 * 1000))
    }

    /// Pushes the whole outbox, then pulls until the server has nothing more.
    /// Runs on the caller's executor (`nonisolated(nonsending)`): the store is not Sendable and
    /// stays with its owner.
    ///
    /// Another process writing to the same replica meanwhile (an edit in another window while
    /// `sync --watch` runs) makes the step that follows refuse (`changedElsewhere`): the store
    /// reloads the file and the sync starts over from what is durable — pushes the server already
    /// has are acknowledged again, nothing is lost or applied twice.
    public nonisolated(nonsending) func sync() async throws -> SyncReport {
        var total = SyncReport()
        var attempt = 1
        while true {
            var report = SyncReport()
            do {
                try await syncOnce(into: &report)
                total.add(report)
                return total
            } catch let error as StoreError where error.code == .changedElsewhere && attempt < 20 {
                total.add(report)
                attempt += 1
                try store.reload()
            }
        }
    }

    private nonisolated(nonsending) func syncOnce(into report: inout SyncReport) async throws {
        var rounds = 0
        while true {
            let limits = store.session.limits
            let outbox = try store.pendingChanges(limit: limits.pushChanges, maxBytes: limits.pushBytes)
            guard let batch = store.session.nextPush(outbox: outbox) else { break }
            let sentAt = wall()
            let answer = try await transport.push(batch.encodedBlob())
            let ack = try PushAck(blob: answer)
            var session = store.session
            let actions = session.receive(ack, for: batch, sentAt: sentAt, receivedAt: wall())
            try store.commit(session: session, actions: actions, wall: wall())
            report.pushBatches += 1
            report.pushedChanges += batch.changes.count - ack.rejected.count
            report.rejectedChanges += ack.rejected.count
            report.epochChanged = report.epochChanged || actions.contains(.repushEverything)
            rounds += 1
            if ack.rejected.count == batch.changes.count && rounds > 1_000 { break }
        }
        if takesImages, let images = transport as? any ImageSyncTransport, try store.isFresh() {
            try await takeImage(from: images, into: &report)
        }
        // With a transport that can be used concurrently, the next batch is asked for while
        // this one is written, and prepared (decoded, merged, encoded: `CommitBase.prepare`) on
        // another thread as soon as it arrives: on 2 cores that work overlaps SQLite's.
        var ahead: Ahead?
        defer { ahead?.task.cancel() }
        // The last step written and the entity versions it replaced. The next step's preparing
        // task frees them if it is done before the writer (below, `Ahead`): on that thread,
        // whose heap they came from; otherwise the writer does, while it waits for that step.
        var written: WrittenStep?
        /// Drops `written` here, on this thread, now, unless the preparing side did.
        func dropWritten() { written.take()?.drop() }
        while true {
            let step: PulledStep
            if let next = ahead, next.request == store.session.nextPull() {
                ahead = nil
                do {
                    step = try await next.task.value
                } catch let failure as SyncFailure where failure.code == .staleCursor {
                    continue  // asked again below, where a stale cursor is handled
                }
            } else {
                ahead?.task.cancel()
                ahead = nil
                let request = store.session.nextPull()
                let sentAt = wall()
                let answer: [UInt8]
                do {
                    answer = try await transport.pull(request.encodedBlob())
                } catch let failure as SyncFailure where failure.code == .staleCursor && !report.rebootstrapped {
                    // Away longer than the server keeps deletions. The outbox was pushed above (the
                    // store refuses otherwise); start again from an empty state and cursor 0.
                    try store.rebootstrap(wall: wall())
                    report.rebootstrapped = true
                    // Starting from nothing again: the server's bootstrap image brings it all in
                    // one file, as for a fresh replica (the replica's refused changes, sequence
                    // numbers and trail are kept; `adoptImage`).
                    if takesImages, let images = transport as? any ImageSyncTransport {
                        try await takeImage(from: images, into: &report)
                    }
                    continue
                }
                step = try PulledStep(
                    request: request, answer: answer, session: store.session, sentAt: sentAt, receivedAt: wall(),
                    base: store.commitBase())
            }
            let actions = step.prepared.actions
            if pipelinesPulls, actions.contains(.pullAgain), !actions.contains(.repushEverything),
                let concurrent = transport as? any ConcurrentSyncTransport
            {
                ahead = Ahead(
                    after: step, base: store.commitBase(after: step.prepared), concurrent, wall: wall(),
                    maxChanges: maxChangesPerTransaction, dropping: written)
            }
            try store.write(step.prepared)
            // The batches asked for meanwhile are joined into the next step until now: the
            // batch in flight is the last of it.
            ahead?.writerFinished.set()
            // Until that batch is prepared the writer would wait idle: it frees the step before
            // this one now if the preparing side has not. (Freed on a task of its own, as until
            // an earlier design, that work took a third thread beside the writer and the preparing side
            // on two cores.)
            dropWritten()
            // The next step's preparation holds the store's state; taking this step into memory
            // before it finished would copy the whole state.
            if let next = ahead { _ = await next.task.result }
            let replaced = store.adopt(step.prepared)
            report.pullBatches += step.batches
            report.pullTransactions += 1
            report.pulledChanges += step.changeCount
            written = WrittenStep((step, replaced))
            if actions.contains(.repushEverything) {
                // The server was restored: push what it lacks, then pull again from the start.
                report.epochChanged = true
                dropWritten()
                report.add(try await sync())
                return
            }
            if !actions.contains(.pullAgain) { break }
        }
    }

    /// Downloads the server's bootstrap image and takes it. An image that does not fit (damaged,
    /// another tenant or schema) is skipped, and so is a download the network cut or damaged:
    /// the pulls that follow bring everything instead, batch by batch, each one durable — a bad
    /// link that cuts a large file every time still lets the replica make progress. An error
    /// that does not heal (a revoked device) is thrown.
    private nonisolated(nonsending) func takeImage(
        from images: any ImageSyncTransport, into report: inout SyncReport
    ) async throws {
        let download = store.imageDownloadPath
        defer { unlink(download) }
        let outcome = try await Self.download(from: images, to: download)
        guard case .downloaded(let verified) = outcome.download else {
            report.imageRefusal = outcome.failure
            return
        }
        do {
            report.imageEntities = try store.adoptImage(at: download, checked: verified).entities
        } catch let refusal where refusal.code == .imageRefused {
            report.imageRefusal = refusal.message
        }
    }

    /// The download, or — when the network cut or damaged it — `.unavailable` and why.
    private nonisolated(nonsending) static func download(
        from images: any ImageSyncTransport, to path: String
    ) async throws -> (download: ImageDownload, failure: String?) {
        do {
            return (try await images.downloadImage(to: path), nil)
        } catch {
            guard RetryPolicy.canHeal(error) else { throw error }
            return (.unavailable, "the download failed (\(error)); pulled instead")
        }
    }

    /// Pulled batches, decoded, received by the session and prepared for the store: one, or
    /// several joined (``PreparedCommit/append(_:)``) to be written in one transaction.
    private struct PulledStep: Sendable {
        private(set) var changeCount: Int
        private(set) var batches = 1
        private(set) var prepared: PreparedCommit

        init(
            request: PullRequest, answer: [UInt8], session: ReplicaSyncSession, sentAt: UInt64, receivedAt: UInt64,
            base: CommitBase
        ) throws {
            let response = try PullResponse(blob: answer)
            var session = session
            let actions = session.receive(response, for: request, sentAt: sentAt, receivedAt: receivedAt)
            changeCount = response.changes.count
            prepared = try base.prepare(session: session, actions: actions, wall: receivedAt)
        }

        /// Whether another batch may be joined to this step: the server has more, and the
        /// step ends no sync (a changed epoch is handled after its own transaction).
        var canGrow: Bool {
            prepared.actions.contains(.pullAgain) && !prepared.actions.contains(.repushEverything)
        }

        /// Joins `next`, prepared against `base.after(prepared)`.
        mutating func append(_ next: PulledStep) {
            prepared.append(next.prepared)
            changeCount += next.changeCount
            batches += next.batches
        }
    }

    /// A step written and the entity versions it replaced, to be freed by whichever side comes
    /// to it first: the next step's preparing task, or the writer.
    private final class WrittenStep: Sendable {
        private let contents: Mutex<(step: PulledStep, replaced: TenantState.Replaced)?>

        init(_ contents: (step: PulledStep, replaced: TenantState.Replaced)) { self.contents = Mutex(contents) }

        /// Frees the step on the calling thread (nothing when it was freed already).
        func drop() {
            let taken = contents.withLock { $0.take() }
            withExtendedLifetime(taken) {}
        }
    }

    /// The next pulls, asked for and prepared while the current step is written. The first is
    /// asked for at once; each one that arrives before the writer finishes is followed by the
    /// next, joined to the same step (up to `maxChanges`): a writer slower than the network takes
    /// several batches per transaction, one that keeps up takes them one by one, as they come.
    /// Their base is the store's state with the current step over it; the step is used only if
    /// the store's next request is exactly `request` (otherwise it is cancelled and asked again).
    private struct Ahead {
        let request: PullRequest
        let task: Task<PulledStep, any Error>
        /// Set when the current step is written: the batch in flight is the last of the next step.
        let writerFinished = Flag()

        final class Flag: Sendable {
            private let value = Atomic(false)
            var isSet: Bool { value.load(ordering: .acquiring) }
            func set() { value.store(true, ordering: .releasing) }
        }

        /// `written` (the step before `step`) is freed by the task when it is done before the
        /// writer (it would wait idle), otherwise by the writer.
        init(
            after step: PulledStep, base: CommitBase, _ transport: any ConcurrentSyncTransport, wall sentAt: UInt64,
            maxChanges: Int, dropping written: WrittenStep?
        ) {
            let session = step.prepared.session
            let request = session.nextPull()
            self.request = request
            let writerFinished = self.writerFinished
            let started = ContinuousClock.now
            /// Ms since `started`, after the wall time the first request was sent at: the engine's
            /// (injectable) wall clock, moved on by the time that passed.
            @Sendable func now() -> UInt64 {
                let took = ContinuousClock.now - started
                return sentAt + UInt64(max(0, took.components.seconds)) * 1000
                    + UInt64(max(0, took.components.attoseconds / 1_000_000_000_000_000))
            }
            @Sendable func pull(
                _ request: PullRequest, after session: ReplicaSyncSession, base: CommitBase
            )
                async throws -> PulledStep
            {
                let asked = now()
                let answer = try await transport.pull(request.encodedBlob())
                return try PulledStep(
                    request: request, answer: answer, session: session, sentAt: asked, receivedAt: now(), base: base)
            }
            task = Task {
                var next = try await pull(request, after: session, base: base)
                while next.canGrow, next.changeCount < maxChanges, !writerFinished.isSet, !Task.isCancelled {
                    let session = next.prepared.session
                    do {
                        // `base.after(...)` is a temporary: `next.prepared` is unshared again when the
                        // batch is joined, so its entities are joined in place, not copied.
                        let batch = try await pull(
                            session.nextPull(), after: session, base: base.after(next.prepared))
                        next.append(batch)
                    } catch {
                        // The batches joined so far stand; the next ask, outside this step, meets
                        // the error again and is handled there (a retry, a stale cursor).
                        break
                    }
                }
                // Stopped before the writer finished (the step is full, or the server has no
                // more): this side would wait idle, so it frees the step before. Otherwise the
                // writer does: while this side is the slower one (title changes),
                // the work here would slow every step.
                if !writerFinished.isSet { written?.drop() }
                return next
            }
        }
    }
}
