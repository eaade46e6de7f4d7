import StoreSupport
import Synchronization

/// Bearer token → device, remembered for up to `lifetime` so a request does not hash its token
/// and read the device's row to authenticate. Revocation is never taken from here: a device
/// found in the cache is checked against the store's revoked column on every request (one
/// primary-key read), so a revoke — through this server or by another process — refuses the
/// very next request, and a record read just before a revoke committed cannot bring the device
/// back. Changes of role made by another process are seen within `lifetime`.
final class DeviceCache: Sendable {
    private struct Entry {
        let device: DeviceRecord
        let expires: ContinuousClock.Instant
    }
    private let entries = Mutex([String: Entry]())
    private let lifetime: Duration

    init(lifetime: Duration = .seconds(2)) { self.lifetime = lifetime }

    /// The device of `token` and whether it is revoked now.
    func device(token: String, store: any ServerStore, now: ContinuousClock.Instant) async throws -> DeviceRecord? {
        if let entry = entries.withLock({ $0[token] }), entry.expires > now {
            var revoked = wasRevoked(entry.device.id)
            if !revoked { revoked = try await store.isRevoked(device: entry.device.id) }
            if revoked {
                forget(device: entry.device.id)
                return try await store.device(token: token)  // the stored, revoked record
            }
            return entry.device
        }
        guard let device = try await store.device(token: token) else { return nil }
        if device.isRevoked { return device }  // never cached: nothing to refuse it by later
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
