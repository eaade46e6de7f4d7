import Domain
import Foundation
import Logging
import StoreSupport
import Synchronization

/// What the server's routes and background services share while it runs: the config, the
/// durable store (`any ServerStore`), group commit, live-change notification, the caches of devices and
/// tenant heads, rate limits and the metrics. One per server process; `SyncServerApp` builds the
/// router's controllers and the ServiceLifecycle services over it.
public final class ServerRuntime: Sendable {
    public let config: ServerConfig
    public let store: any ServerStore
    public let metrics: ServerMetrics
    /// The certificate fingerprint put in enrolment strings (nil with h2c).
    public let fingerprint: String?
    let secrets: ServerSecrets?
    let committer: GroupCommitter
    let heads = TenantHeads()
    let notifier = ChangeNotifier()
    let limiter: RateLimiter
    let enrolLimiter: RateLimiter
    let enrolAddressLimiter: RateLimiter
    let activity = ActivityTracker()
    let devices = DeviceCache()
    let liveSlots: LiveStreamSlots
    let bodies: BodyBudget
    public let images: BootstrapImages
    let bodyReader: BodyReader
    let logger: Logger
    let wall: @Sendable () -> UInt64
    /// The last store probe's answer (`probeStore`), what `/readyz` says.
    let storeWritable = Atomic<Bool>(true)
    /// Open conflicts per tenant as of a sequence and when they were derived, so a gauge refresh
    /// derives them again only for tenants that changed, and at most every
    /// ``conflictsRefreshFactor`` refreshes.
    let conflictsByTenant = Mutex([String: (sequence: UInt64, count: Int, at: ContinuousClock.Instant)]())

    /// Deriving a tenant's conflicts decodes its whole state (about a second of CPU for 100,000
    /// contacts): for a tenant that changes all the time it is done every this many gauge
    /// refreshes (5 minutes at the default 15 s), not at each — done every 15 s it put 100 ms
    /// stalls into live notifications (server-bench's p99). The conflicts alert looks at an hour.
    static let conflictsRefreshFactor = 20

    public init(
        config: ServerConfig, store: any ServerStore, images: BootstrapImages, fingerprint: String?,
        secrets: ServerSecrets? = nil, logger: Logger,
        wall: @escaping @Sendable () -> UInt64 = ServerRuntime.systemWall
    ) {
        self.config = config
        self.store = store
        self.fingerprint = fingerprint
        self.secrets = secrets
        self.logger = logger
        self.wall = wall
        let metrics = ServerMetrics()
        self.metrics = metrics
        self.images = images
        self.limiter = RateLimiter(rate: config.limits.requestsPerSecond, burst: config.limits.burst)
        self.enrolLimiter = RateLimiter(rate: config.limits.enrolmentsPerSecond, burst: config.limits.enrolmentBurst)
        self.enrolAddressLimiter = RateLimiter(
            rate: config.limits.enrolmentsPerSecondPerAddress, burst: config.limits.enrolmentBurstPerAddress)
        self.liveSlots = LiveStreamSlots(
            perDevice: config.limits.maxLiveStreamsPerDevice, perTenant: config.limits.maxLiveStreamsPerTenant)
        self.bodies = BodyBudget(limit: config.limits.maxBodyBytesInFlight)
        self.bodyReader = BodyReader(maxJSONDepth: config.limits.maxJSONDepth)
        let notifier = self.notifier
        let heads = self.heads
        self.committer = GroupCommitter(store: store, wall: wall) { group, receipts in
            metrics.groupCommits.increment()
            // One notification per tenant per group: its newest sequence covers every push in it.
            var newest = [String: UInt64]()
            for (push, receipt) in zip(group, receipts) {
                newest[push.tenant] = max(newest[push.tenant] ?? 0, receipt.sequence)
                // Before the notification: a follower it wakes must not be told "nothing new".
                heads.record(push.tenant, epoch: receipt.ack.epoch, sequence: receipt.sequence)
            }
            for (tenant, sequence) in newest { notifier.publish(tenant: tenant, sequence: sequence) }
        }
    }

    /// A runtime over the embedded SQLite store in `database`, its bootstrap images in the
    /// data directory's `images` folder.
    public convenience init(
        config: ServerConfig, database: ServerDatabase, fingerprint: String?, secrets: ServerSecrets? = nil,
        logger: Logger, wall: @escaping @Sendable () -> UInt64 = ServerRuntime.systemWall
    ) {
        self.init(
            config: config, store: SQLiteServerStore(database),
            images: BootstrapImages(directory: config.dataURL.appendingPathComponent("images").path, store: database),
            fingerprint: fingerprint, secrets: secrets, logger: logger, wall: wall)
    }

    @Sendable public static func systemWall() -> UInt64 { UInt64(max(0, Date().timeIntervalSince1970 * 1000)) }
}
