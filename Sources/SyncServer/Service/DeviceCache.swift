import Replica
import Synchronization

/// Bearer token → device, remembered for up to `lifetime` so a request does not need an SQLite
/// read to authenticate. A revocation through this server forgets the device at once (its next
/// request is refused); changes made by another process (`sync-server enroll` changing a role)
/// are seen within `lifetime`.
final class DeviceCache: Sendable {
    private struct Entry {
        let device: DeviceRecord
        let expires: ContinuousClock.Instant
    }
    private let entries = Mutex([String: Entry]())
    private let lifetime: Duration

    init(lifetime: Duration = .seconds(2)) { self.lifetime = lifetime }

    func device(token: String, store: ServerStore, now: ContinuousClock.Instant) throws(StoreError) -> DeviceRecord? {
        if let entry = entries.withLock({ $0[token] }), entry.expires > now { return entry.device }
        guard let device = try store.device(token: token) else { return nil }
        entries.withLock { entries in
            if entries.count > 100_000 { entries.removeAll() }  // bounded: unknown tokens are not cached
            entries[token] = Entry(device: device, expires: now + lifetime)
        }
        return device
    }

    /// Forgets the devices of `user` (their role changed through this server): the next request
    /// reads the new role.
    func forget(tenant: String, user: String) {
        entries.withLock { entries in
            entries = entries.filter { $0.value.device.tenant != tenant || $0.value.device.user != user }
        }
    }

    func forget(device id: String) {
        entries.withLock { entries in entries = entries.filter { $0.value.device.id != id } }
        revoked.withLock { _ = $0.insert(id) }
    }

    /// Devices revoked through this server since it started (live streams check it per event).
    private let revoked = Mutex(Set<String>())

    func wasRevoked(_ id: String) -> Bool { revoked.withLock { $0.contains(id) } }
}
