import Dispatch
import Domain
import StoreSupport
import Synchronization

/// Gathers concurrent pushes into one transaction: while a group commits (and fsyncs), new
/// pushes queue; the next group takes all of them. So N concurrent pushes cost about one fsync,
/// not N, and each push is still acknowledged only after its own commit is durable.
///
/// SQLite work runs on one dedicated dispatch queue, never on the NIO event loops or the
/// cooperative pool.
final class GroupCommitter: Sendable {
    private struct Waiting {
        let push: ServerStore.Push
        let continuation: CheckedContinuation<ServerStore.Receipt, any Error>
    }

    private struct State {
        var queue: [Waiting] = []
        var draining = false
    }

    private let store: ServerStore
    private let maxGroup: Int
    private let state = Mutex(State())
    private let worker = DispatchQueue(label: "kraliki.ingest")
    private let wall: @Sendable () -> UInt64
    private let committed: @Sendable (_ group: [ServerStore.Push], _ receipts: [ServerStore.Receipt]) -> Void

    init(
        store: ServerStore, maxGroup: Int = 256, wall: @escaping @Sendable () -> UInt64,
        committed: @escaping @Sendable ([ServerStore.Push], [ServerStore.Receipt]) -> Void
    ) {
        self.store = store
        self.maxGroup = maxGroup
        self.wall = wall
        self.committed = committed
    }

    /// Commits `push` (with whatever else is waiting) and returns its receipt once durable.
    func submit(_ push: ServerStore.Push) async throws -> ServerStore.Receipt {
        try await withCheckedThrowingContinuation { continuation in
            let start = state.withLock { state -> Bool in
                state.queue.append(Waiting(push: push, continuation: continuation))
                if state.draining { return false }
                state.draining = true
                return true
            }
            if start { worker.async { self.drain() } }
        }
    }

    private func drain() {
        while true {
            let group = state.withLock { state -> [Waiting] in
                let group = Array(state.queue.prefix(maxGroup))
                state.queue.removeFirst(group.count)
                if group.isEmpty { state.draining = false }
                return group
            }
            if group.isEmpty { return }
            let pushes = group.map(\.push)
            do {
                let receipts = try store.receive(pushes, wall: wall())
                committed(pushes, receipts)
                for (waiting, receipt) in zip(group, receipts) { waiting.continuation.resume(returning: receipt) }
            } catch {
                for waiting in group { waiting.continuation.resume(throwing: error) }
            }
        }
    }
}
