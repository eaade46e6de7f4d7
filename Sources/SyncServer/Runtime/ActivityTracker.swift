import StoreSupport
import Synchronization

/// Devices' latest activity (seen, pulled, cursor), kept in memory and written to
/// the store in one transaction every few seconds, so a pull never has to write (or fsync).
final class ActivityTracker: Sendable {
    private let pending = Mutex([String: DeviceActivity]())

    func seen(_ device: String, wall: UInt64) {
        pending.withLock { pending in
            var activity = pending[device] ?? DeviceActivity(lastSeenMs: wall)
            activity.lastSeenMs = max(activity.lastSeenMs, wall)
            pending[device] = activity
        }
    }

    func pulled(_ device: String, wall: UInt64, cursor: UInt64) {
        pending.withLock { pending in
            var activity = pending[device] ?? DeviceActivity(lastSeenMs: wall)
            activity.lastSeenMs = max(activity.lastSeenMs, wall)
            activity.lastPullMs = wall
            activity.cursor = cursor
            pending[device] = activity
        }
    }

    /// Writes what gathered since the last flush.
    func flush(to store: any ServerStore) async throws {
        let batch = pending.withLock { pending in
            let batch = pending
            pending = [:]
            return batch
        }
        try await store.record(activity: batch)
    }
}
