import Synchronization

/// Counts the live streams open per device and per tenant, so one device (or one stolen token)
/// cannot open streams until the server's connection cap and lock every tenant out.
///
/// A stream holds a ``Slot`` from the moment its request is admitted; the slot is given back
/// when it is released — when the response body finishes, or when the response is dropped
/// without ever being written (a client that went away before its body started).
final class LiveStreamSlots: Sendable {
    private struct Counts {
        var byDevice: [String: Int] = [:]
        var byTenant: [String: Int] = [:]
    }
    private let counts = Mutex(Counts())
    let perDevice: Int
    let perTenant: Int

    init(perDevice: Int, perTenant: Int) {
        self.perDevice = perDevice
        self.perTenant = perTenant
    }

    /// Why a stream was not admitted.
    enum Refusal: Error {
        case device(open: Int)
        case tenant(open: Int)
    }

    /// A slot for one more stream of `device` in `tenant`, or the cap it would exceed.
    func take(device: String, tenant: String) throws(Refusal) -> Slot {
        try counts.withLock { counts throws(Refusal) in
            let forDevice = counts.byDevice[device, default: 0]
            let forTenant = counts.byTenant[tenant, default: 0]
            if forDevice >= perDevice { throw .device(open: forDevice) }
            if forTenant >= perTenant { throw .tenant(open: forTenant) }
            counts.byDevice[device] = forDevice + 1
            counts.byTenant[tenant] = forTenant + 1
        }
        return Slot(slots: self, device: device, tenant: tenant)
    }

    fileprivate func give(device: String, tenant: String) {
        counts.withLock { counts in
            func decrement(_ map: inout [String: Int], _ key: String) {
                let value = map[key, default: 1] - 1
                map[key] = value > 0 ? value : nil
            }
            decrement(&counts.byDevice, device)
            decrement(&counts.byTenant, tenant)
        }
    }

    /// One admitted stream; given back once, at `release()` or when the last reference goes.
    final class Slot: Sendable {
        private let slots: LiveStreamSlots
        private let device: String
        private let tenant: String
        private let released = Atomic<Bool>(false)

        fileprivate init(slots: LiveStreamSlots, device: String, tenant: String) {
            self.slots = slots
            self.device = device
            self.tenant = tenant
        }

        func release() {
            if !released.exchange(true, ordering: .acquiringAndReleasing) { slots.give(device: device, tenant: tenant) }
        }

        deinit { release() }
    }
}
