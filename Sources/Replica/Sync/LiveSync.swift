import Foundation
import LocalStorage
import StoreSupport

extension SyncEngine {
    /// What the live loop did, for progress output.
    public enum LiveEvent: Sendable {
        case synced(SyncReport)
        case disconnected(any Error, retryIn: Duration)
    }

    /// Live mode: syncs, then follows the server's live stream and syncs whenever the tenant
    /// has changes this replica has not pulled (or local changes wait in the outbox); through
    /// network drops it reconnects with backoff and syncs again, until cancelled or an error
    /// that cannot heal (revoked device, incompatible version).
    ///
    /// Every `localPoll` it also looks whether another process committed to this replica (an
    /// edit made in another window: SQLite's `data_version`); if so it reads the file again and
    /// pushes what waits in the outbox. Without this a local edit waited for the server's next
    /// event, which in a quiet tenant may never come (the stream's heartbeats carry none).
    public nonisolated(nonsending) func follow(
        live: @escaping () async throws -> AsyncThrowingStream<UInt64, any Error>,
        policy: RetryPolicy = RetryPolicy(initialDelay: .milliseconds(200), maximumDelay: .seconds(10)),
        localChanges: (() -> Bool)? = nil,
        localPoll: Duration = .seconds(1),
        onEvent: (LiveEvent) -> Void = { _ in }
    ) async throws {
        var generator = SystemRandomNumberGenerator()
        var attempt = 0
        while !Task.isCancelled {
            do {
                let stream = try await live()
                onEvent(.synced(try await sync()))
                attempt = 0
                for try await signal in Self.merging(stream, tickingEvery: localPoll) {
                    let due: Bool
                    switch signal {
                    case .server(let sequence):
                        let behind = sequence != store.session.pullCursor  // also after a restore (new epoch)
                        let waiting = try store.outboxCount() > 0
                        due = behind || waiting || localChanges?() == true
                    case .tick:
                        guard store.dataVersionChanged() || localChanges?() == true else { continue }
                        try store.reload()
                        let waiting = try store.outboxCount() > 0
                        due = waiting || localChanges?() == true
                    }
                    if due { onEvent(.synced(try await sync())) }
                }
            } catch {
                if Task.isCancelled { return }
                guard RetryPolicy.canHeal(error) else { throw error }
                attempt += 1
                let delay = policy.delay(after: attempt, using: &generator)
                onEvent(.disconnected(error, retryIn: delay))
                try await Task.sleep(for: delay)
            }
        }
    }

    private enum LiveSignal: Sendable {
        case server(UInt64)
        case tick
    }

    /// The server's stream and a clock ticking every `interval`, as one stream; it ends when the
    /// server's does, and stops both when its consumer does.
    private static func merging(
        _ stream: AsyncThrowingStream<UInt64, any Error>, tickingEvery interval: Duration
    ) -> AsyncThrowingStream<LiveSignal, any Error> {
        AsyncThrowingStream { continuation in
            let server = Task {
                do {
                    for try await sequence in stream { continuation.yield(.server(sequence)) }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            let ticker = Task {
                while !Task.isCancelled {
                    try? await Task.sleep(for: interval)
                    continuation.yield(.tick)
                }
            }
            continuation.onTermination = { _ in
                server.cancel()
                ticker.cancel()
            }
        }
    }
}
