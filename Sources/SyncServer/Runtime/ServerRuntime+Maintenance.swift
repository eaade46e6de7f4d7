import Foundation
import StoreSupport

/// The work the background services do over the runtime (`Services/`): device activity,
/// bootstrap images, garbage collection, the store gauges and the readiness probe.
extension ServerRuntime {
    /// Ends live streams (graceful shutdown: in-flight requests finish, streams close).
    public func closeLiveStreams() { notifier.finishAll() }

    /// Writes gathered device activity (called every few seconds and at shutdown).
    public func flushActivity() async throws { try await activity.flush(to: store) }

    /// Writes the bootstrap images that are due (see `BootstrapImages.tenantsDue`).
    public func refreshImages(minChanges: UInt64) throws(StoreError) -> [BootstrapImages.Image] {
        var built = [BootstrapImages.Image]()
        for tenant in try images.tenantsDue(minChanges: minChanges) {
            built.append(try images.refresh(tenant: tenant, wall: wall()))
            metrics.imagesBuilt.increment()
        }
        return built
    }

    /// Collects tombstones and superseded log entries now (see ServerDatabase+Retention.swift).
    public func collectGarbage() async throws -> GarbageCollection {
        let wall = self.wall()
        // Device cursors in the store must be current: they decide what every device has pulled.
        try await flushActivity()
        let collection = try await store.collectGarbage(retention: config.retentionMs, wall: wall)
        metrics.tombstonesCollected.increment(by: Int64(collection.tombstones))
        metrics.logEntriesCollected.increment(by: Int64(collection.logEntries))
        metrics.lastCollection.set(Double(wall) / 1000)
        return collection
    }

    /// Computes the gauges read from the store: enrolled devices, and per tenant its sequence,
    /// the lag of its furthest-behind device and its open conflicts (derived again only for
    /// tenants whose sequence moved since the last refresh). Run by `StoreGaugesService` every
    /// `metricsRefreshSeconds`, never on a request.
    public func refreshStoreGauges() async throws {
        let devices = try await store.allDevices()
        var lagByTenant = [String: UInt64]()
        for tenant in Set(devices.map(\.tenant)) {
            let sequence = try await store.sequence(of: tenant)
            let lag = devices.filter { $0.tenant == tenant && !$0.isRevoked }.map {
                sequence - min(sequence, $0.cursor)
            }
            lagByTenant[tenant] = lag.max() ?? 0
            let known = conflictsByTenant.withLock { $0[tenant] }
            let now = ContinuousClock.now
            let due = Duration.seconds(config.metricsRefreshSeconds * Self.conflictsRefreshFactor)
            let conflicts: Int
            if let known, known.sequence == sequence || now - known.at < due {
                conflicts = known.count
            } else {
                conflicts = try await store.state(of: tenant).conflicts().count
                conflictsByTenant.withLock { $0[tenant] = (sequence, conflicts, now) }
            }
            metrics.set(
                "kraliki_conflicts_open", "Open conflicts of a tenant.", labels: [("tenant", tenant)],
                to: Double(conflicts))
            metrics.set(
                "kraliki_tenant_sequence", "The last sequence number of a tenant.", labels: [("tenant", tenant)],
                to: Double(sequence))
        }
        for (tenant, lag) in lagByTenant {
            metrics.set(
                "kraliki_replica_lag_changes", "Changes the furthest-behind active device of a tenant has not pulled.",
                labels: [("tenant", tenant)], to: Double(lag))
        }
        metrics.set(
            "kraliki_devices", "Enrolled devices that are not revoked.",
            to: Double(devices.filter { !$0.isRevoked }.count))
    }

    /// Checks that the store takes a write transaction, for `/readyz` (every 2 s, by
    /// `HousekeepingService`); a failure is logged with its cause.
    public func probeStore() async {
        do {
            try await store.checkWritable()
            storeWritable.store(true, ordering: .relaxed)
        } catch {
            if storeWritable.exchange(false, ordering: .relaxed) {
                logger.error("the store is not writable; /readyz answers 503", metadata: ["error": "\(error)"])
            }
        }
    }
}
