import Domain
import StoreSupport
import Synchronization

/// Gathers concurrent pushes into one transaction: while a group commits (and fsyncs), new
/// pushes queue; the next group takes all of them. So N concurrent pushes cost about one fsync,
/// not N, and each push is still acknowledged only after its own commit is durable.
///
/// One group at a time: a drain task hands each group to `ServerStore.receive` and waits for it
/// (the SQLite store runs it on a dispatch queue, never on the NIO event loops or the
/// cooperative pool).
final class GroupCommitter: Sendable {
    private struct Waiting {
        let push: TenantPush
        let continuation: CheckedContinuation<PushReceipt, any Error>
    }

    private struct State {
        var queue: [Waiting] = []
        var draining = false
    }

    private let store: any ServerStore
    private let maxGroup: Int
    private let state = Mutex(State())
    private let wall: @Sendable () -> UInt64
    private let committed: @Sendable (_ group: [TenantPush], _ receipts: [PushReceipt]) -> Void

    init(
        store: any ServerStore, maxGroup: Int = 256, wall: @escaping @Sendable () -> UInt64,
        committed: @escaping @Sendable ([TenantPush], [PushReceipt]) -> Void
    ) {
        self.store = store
        self.maxGroup = maxGroup
        self.wall = wall
        self.committed = committed
    }

    /// Commits `push` (with whatever else is waiting) and returns its receipt once durable.
    func submit(_ push: TenantPush) async throws -> PushReceipt {
        try await withCheckedThrowingContinuation { continuation in
            let start = state.withLock { state -> Bool in
                state.queue.append(Waiting(push: push, continuation: continuation))
                if state.draining { return false }
                state.draining = true
                return true
            }
            if start { Task { await self.drain() } }
        }
    }

    private func drain() async {
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
                let receipts = try await store.receive(pushes, wall: wall())
                committed(pushes, receipts)
                for (waiting, receipt) in zip(group, receipts) { waiting.continuation.resume(returning: receipt) }
            } catch {
                for waiting in group { waiting.continuation.resume(throwing: error) }
            }
        }
    }
}
