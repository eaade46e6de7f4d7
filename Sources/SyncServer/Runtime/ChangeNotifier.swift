import Foundation
import Synchronization

/// Tells live streams that their tenant has new changes: each subscriber gets the tenant's
/// newest sequence number, coalesced (a slow reader sees the latest, not a backlog).
final class ChangeNotifier: Sendable {
    private struct State {
        var subscribers: [String: [UUID: AsyncStream<UInt64>.Continuation]] = [:]
    }
    private let state = Mutex(State())

    /// Not a sequence number: what a live stream's heartbeat puts in its stream.
    static let heartbeat = UInt64.max

    /// A stream of the tenant's newest sequence numbers, and its continuation (for heartbeats);
    /// ends when the consumer stops. Two places: a heartbeat must not push out a sequence.
    func subscribe(tenant: String) -> (AsyncStream<UInt64>, AsyncStream<UInt64>.Continuation) {
        let id = UUID()
        let (stream, continuation) = AsyncStream.makeStream(of: UInt64.self, bufferingPolicy: .bufferingNewest(2))
        continuation.onTermination = { [weak self] _ in
            self?.state.withLock { state in
                state.subscribers[tenant]?[id] = nil
                if state.subscribers[tenant]?.isEmpty == true { state.subscribers[tenant] = nil }
            }
        }
        state.withLock { state in state.subscribers[tenant, default: [:]][id] = continuation }
        return (stream, continuation)
    }

    func publish(tenant: String, sequence: UInt64) {
        let continuations = state.withLock { state in state.subscribers[tenant].map { Array($0.values) } ?? [] }
        for continuation in continuations { continuation.yield(sequence) }
    }

    var openStreams: Int { state.withLock { state in state.subscribers.values.reduce(0) { $0 + $1.count } } }

    /// Ends every stream (graceful shutdown).
    func finishAll() {
        let continuations = state.withLock { state in state.subscribers.values.flatMap(\.values) }
        for continuation in continuations { continuation.finish() }
    }
}
