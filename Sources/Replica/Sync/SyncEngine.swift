import CRDT
import Domain
import Foundation

/// Moves protocol messages to the server and back. The HTTP/2 client (over TLS, with the
/// server's certificate pinned) implements this once the server exists (issue #5); tests use
/// an in-process transport with injected faults.
public protocol SyncTransport {
    /// Sends an encoded `PushBatch`, returns the encoded `PushAck`.
    nonisolated(nonsending) func push(_ batch: [UInt8]) async throws -> [UInt8]
    /// Sends an encoded `PullRequest`, returns the encoded `PullResponse`.
    nonisolated(nonsending) func pull(_ request: [UInt8]) async throws -> [UInt8]
}

/// A transport that may be used from two tasks at once. The engine then asks for the next pull
/// batch while it applies the current one, so the server's work and the network overlap the
/// replica's apply (an initial sync is a chain of hundreds of pulls).
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
    public var epochChanged = false
    /// The server refused the cursor as older than its retention; the replica emptied its state
    /// and pulled everything again.
    public var rebootstrapped = false
    /// Entities taken from a bootstrap image (a fresh replica), before the pulls.
    public var imageEntities: Int?
    /// Why an image the server sent was not taken (the replica pulled everything instead).
    public var imageRefusal: String?

    public init() {}
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
    public nonisolated(nonsending) func sync() async throws -> SyncReport {
        var report = SyncReport()
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
        var prefetched: Prefetch?
        defer { prefetched?.task.cancel() }
        while true {
            let request: PullRequest
            let sentAt: UInt64
            var receivedAt: UInt64?
            let answer: [UInt8]
            do {
                if let ahead = prefetched, ahead.request == store.session.nextPull() {
                    // Asked for while the previous batch was applied.
                    prefetched = nil
                    request = ahead.request
                    sentAt = ahead.sentAt
                    let (bytes, arrived) = try await ahead.task.value
                    // When it arrived, on the engine's (injectable) wall clock.
                    let waited = ContinuousClock.now - arrived
                    let waitedMs =
                        UInt64(max(0, waited.components.seconds)) * 1000
                        + UInt64(max(0, waited.components.attoseconds / 1_000_000_000_000_000))
                    let now = wall()
                    receivedAt = now >= waitedMs ? now - waitedMs : 0
                    answer = bytes
                } else {
                    prefetched?.task.cancel()
                    prefetched = nil
                    request = store.session.nextPull()
                    sentAt = wall()
                    answer = try await transport.pull(request.encodedBlob())
                }
            } catch let failure as SyncFailure where failure.code == .staleCursor && !report.rebootstrapped {
                // Away longer than the server keeps deletions. The outbox was pushed above (the
                // store refuses otherwise); start again from an empty state and cursor 0.
                try store.rebootstrap(wall: wall())
                report.rebootstrapped = true
                continue
            }
            let response = try PullResponse(blob: answer)
            var session = store.session
            let actions = session.receive(response, for: request, sentAt: sentAt, receivedAt: receivedAt ?? wall())
            if pipelinesPulls, actions.contains(.pullAgain), let concurrent = transport as? any ConcurrentSyncTransport
            {
                // The request the session will make once this batch is durable; used only if
                // it is exactly that (otherwise it is cancelled and asked again).
                let next = PullRequest(
                    epoch: response.epoch, cursor: response.nextCursor, maxChanges: session.limits.pullChanges,
                    maxBytes: session.limits.pullBytes)
                let blob = next.encodedBlob()
                prefetched = Prefetch(
                    request: next, sentAt: wall(),
                    task: Task { (try await concurrent.pull(blob), ContinuousClock.now) })
            }
            try store.commit(session: session, actions: actions, wall: wall())
            report.pullBatches += 1
            report.pulledChanges += response.changes.count
            if actions.contains(.repushEverything) {
                // The server was restored: push what it lacks, then pull again from the start.
                report.epochChanged = true
                let again = try await sync()
                report.pushedChanges += again.pushedChanges
                report.pushBatches += again.pushBatches
                report.pulledChanges += again.pulledChanges
                report.pullBatches += again.pullBatches
                return report
            }
            if !actions.contains(.pullAgain) { break }
        }
        return report
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

    /// A pull asked for ahead of time.
    private struct Prefetch {
        let request: PullRequest
        let sentAt: UInt64
        let task: Task<([UInt8], ContinuousClock.Instant), any Error>
    }
}
