import Foundation

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
    public nonisolated(nonsending) func follow(
        live: @escaping () async throws -> AsyncThrowingStream<UInt64, any Error>,
        policy: RetryPolicy = RetryPolicy(initialDelay: .milliseconds(200), maximumDelay: .seconds(10)),
        localChanges: (() -> Bool)? = nil,
        onEvent: (LiveEvent) -> Void = { _ in }
    ) async throws {
        var generator = SystemRandomNumberGenerator()
        var attempt = 0
        while !Task.isCancelled {
            do {
                let stream = try await live()
                onEvent(.synced(try await sync()))
                attempt = 0
                for try await sequence in stream {
                    let behind = sequence != store.session.pullCursor  // also after a restore (new epoch)
                    let waiting = try store.outboxCount() > 0
                    if behind || waiting || localChanges?() == true {
                        onEvent(.synced(try await sync()))
                    }
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
}
