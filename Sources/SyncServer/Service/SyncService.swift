import CRDT
import Dispatch
import Domain
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import Replica
import ServiceLifecycle
import Synchronization

/// The server's behaviour behind HTTP: every route, its access rule and its handler, over the
/// durable `ServerStore`. `SyncServerApp` puts it on Hummingbird (HTTP/2 over TLS).
///
/// The route table is data (`routes`), so the OpenAPI test and the authorization matrix test
/// can check every registered route.
public final class SyncService: Sendable {
    public let config: ServerConfig
    public let store: ServerStore
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
        config: ServerConfig, store: ServerStore, fingerprint: String?, secrets: ServerSecrets? = nil, logger: Logger,
        wall: @escaping @Sendable () -> UInt64 = SyncService.systemWall
    ) {
        self.config = config
        self.store = store
        self.fingerprint = fingerprint
        self.secrets = secrets
        self.logger = logger
        self.wall = wall
        let metrics = ServerMetrics()
        self.metrics = metrics
        self.images = BootstrapImages(directory: config.dataURL.appendingPathComponent("images").path, store: store)
        self.limiter = RateLimiter(rate: config.limits.requestsPerSecond, burst: config.limits.burst)
        self.enrolLimiter = RateLimiter(rate: config.limits.enrolmentsPerSecond, burst: config.limits.enrolmentBurst)
        self.enrolAddressLimiter = RateLimiter(
            rate: config.limits.enrolmentsPerSecondPerAddress, burst: config.limits.enrolmentBurstPerAddress)
        self.liveSlots = LiveStreamSlots(
            perDevice: config.limits.maxLiveStreamsPerDevice, perTenant: config.limits.maxLiveStreamsPerTenant)
        self.bodies = BodyBudget(limit: config.limits.maxBodyBytesInFlight)
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

    @Sendable public static func systemWall() -> UInt64 { UInt64(max(0, Date().timeIntervalSince1970 * 1000)) }

    // MARK: Routes

    /// Who may call a route.
    public enum Access: String, Sendable, CaseIterable {
        /// Anyone (health, readiness, enrolment; metrics when `metricsPublic`).
        case open
        /// Any enrolled, unrevoked device.
        case device
        /// Devices of supervisors and admins.
        case supervisor
        /// Devices of admins.
        case admin
    }

    /// One request being handled: the context, the authenticated device, the server time.
    public struct Call: Sendable {
        public let context: SyncRequestContext
        public let device: DeviceRecord?
        public let wall: UInt64
        /// The most body bytes this request may send (smaller for routes open to anyone).
        let bodyLimit: Int
    }

    public struct Route: Sendable {
        public let method: HTTPRequest.Method
        /// Hummingbird syntax (`:id`); OpenAPI writes `{id}`.
        public let path: String
        public let access: Access
        /// Tokens of the device's rate limit a call takes: more for routes that read a whole
        /// tenant (its conflicts, its image).
        public var cost: Double = 1
        let handler: @Sendable (Request, Call) async throws -> Response
    }

    /// The rate-limit cost of routes that read a whole tenant.
    static let wholeTenantCost: Double = 20

    public var routes: [Route] {
        [
            Route(method: .get, path: "/healthz", access: .open) { _, _ in
                try Self.json(["status": "ok"])
            },
            Route(method: .get, path: "/readyz", access: .open) { [self] _, _ in
                // The answer of the last background probe (`probeStore`, every 2 s): a caller
                // cannot make the server take its writer lock, and the body names no path or
                // error (the log has them).
                guard storeWritable.load(ordering: .relaxed) else {
                    throw Problem.unavailable("the store is not writable; the server log says why")
                }
                return try Self.json(["status": "ready"])
            },
            Route(method: .get, path: "/metrics", access: .open) { [self] request, _ in
                try await metricsResponse(request)
            },
            Route(
                method: .post, path: "/v1/enroll", access: .open,
                handler: { [self] request, call in
                    try await enrol(request, call)
                }),
            Route(method: .get, path: "/v1/device", access: .device) { [self] _, call in
                let device = call.device!
                return try Self.json(
                    DeviceInfo(
                        device: device, epoch: try store.epoch(of: device.tenant).description, serverTime: call.wall,
                        url: config.url))
            },
            Route(method: .post, path: "/v1/sync/push", access: .device) { [self] request, call in
                try await push(request, call)
            },
            Route(method: .post, path: "/v1/sync/pull", access: .device) { [self] request, call in
                try await pull(request, call)
            },
            Route(method: .get, path: "/v1/sync/live", access: .device) { [self] _, call in
                try live(call)
            },
            Route(method: .get, path: "/v1/sync/image", access: .device, cost: Self.wholeTenantCost) {
                [self] _, call in
                try await image(call)
            },
            Route(method: .get, path: "/v1/admin/conflicts", access: .supervisor, cost: Self.wholeTenantCost) {
                [store] _, call in
                let tenant = call.device!.tenant
                let state = try await Self.offload { try store.state(of: tenant) }
                return try Self.json(ConflictList(conflicts: state.conflicts()))
            },
            Route(method: .get, path: "/v1/admin/devices", access: .admin) { [store] _, call in
                let tenant = call.device!.tenant
                let sequence = try store.sequence(of: tenant)
                let devices = try store.devices(tenant: tenant).map { DeviceHealth($0, tenantSequence: sequence) }
                return try Self.json(DeviceList(devices: devices))
            },
            Route(method: .post, path: "/v1/admin/devices/:id/revoke", access: .admin) { [self] request, call in
                let id = call.context.parameters.get("id") ?? ""
                let device = call.device!
                do {
                    let revoked = try store.revoke(device: id, tenant: device.tenant, actor: device.id, wall: call.wall)
                    self.devices.forget(device: id)
                    return try Self.json(DeviceHealth(revoked, tenantSequence: try store.sequence(of: device.tenant)))
                } catch let error as DeviceError {
                    throw Problem.notFound(error.message)
                }
            },
            Route(method: .get, path: "/v1/admin/users", access: .admin) { [store] _, call in
                let users = try store.users(tenant: call.device!.tenant).map { UserInfo(name: $0.name, role: $0.role) }
                return try Self.json(UserList(users: users))
            },
            Route(method: .post, path: "/v1/admin/enrolments", access: .admin) { [self] request, call in
                try await createEnrolment(request, call)
            },
            Route(method: .get, path: "/v1/admin/enrolments", access: .admin) { [store] _, call in
                try Self.json(PendingCodeList(codes: try store.pendingCodes(tenant: call.device!.tenant, wall: call.wall)))
            },
            Route(method: .post, path: "/v1/admin/enrolments/:id/revoke", access: .admin) { [store] _, call in
                let id = call.context.parameters.get("id") ?? ""
                let device = call.device!
                do {
                    return try Self.json(
                        store.revokeCode(id: id.lowercased(), tenant: device.tenant, actor: device.id, wall: call.wall))
                } catch let error as DeviceError {
                    throw Problem.notFound(error.message)
                }
            },
            Route(method: .get, path: "/v1/admin/audit", access: .admin) { [store] _, call in
                let entries = try store.auditLog(tenant: call.device!.tenant).map {
                    AuditEntry(atMs: $0.atMs, actor: $0.actor, action: $0.action, detail: $0.detail)
                }
                return try Self.json(AuditLog(entries: entries))
            },
        ]
    }

    /// Runs a route: authentication, authorization and rate limit first, then the handler.
    func run(_ route: Route, _ request: Request, _ context: SyncRequestContext) async throws -> Response {
        let now = wall()
        var device: DeviceRecord?
        if route.access != .open {
            let found = try authenticate(request)
            switch route.access {
            case .supervisor where !found.role.canReadConflicts:
                throw Problem.forbidden("listing the tenant's conflicts needs a supervisor or admin device")
            case .admin where !found.role.canManageDevices:
                throw Problem.forbidden("this needs an admin device")
            default: break
            }
            if let wait = limiter.take(found.id, cost: route.cost) { throw Problem.tooManyRequests(retryAfter: wait) }
            activity.seen(found.id, wall: now)
            device = found
        }
        // Routes open to anyone take small bodies (an enrolment code): strangers cannot hold the
        // server-wide body budget that devices' pushes need.
        let limit = route.access == .open ? min(config.limits.maxBodyBytes, Self.openBodyLimit) : config.limits.maxBodyBytes
        let call = Call(context: context, device: device, wall: now, bodyLimit: limit)
        guard route.method == .post else { return try await route.handler(request, call) }
        // A body is held (and decoded) while the handler runs: reserved from the server-wide
        // budget first, given back when the answer is ready.
        let bytes = min(limit, max(0, request.headers[.contentLength].flatMap(Int.init) ?? limit))
        guard bodies.reserve(bytes) else {
            metrics.bodiesRefused.increment()
            throw Problem.busy(
                "the server is reading as many request bodies as it holds at once (\(bodies.limit) bytes); retry")
        }
        defer { bodies.give(bytes) }
        return try await route.handler(request, call)
    }

    /// The body limit of routes open to anyone (`POST /v1/enroll` takes a code of 64 characters
    /// at most, and a rejoin claim).
    static let openBodyLimit = 16 * 1024

    /// The device a request's bearer token belongs to; 401 otherwise.
    func authenticate(_ request: Request) throws -> DeviceRecord {
        guard let header = request.headers[.authorization] else {
            throw Problem.unauthorized("send the device token as `Authorization: Bearer <token>`")
        }
        let parts = header.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer", parts[1].count <= 256 else {
            throw Problem.unauthorized("the Authorization header must be `Bearer <token>`")
        }
        guard let device = try devices.device(token: String(parts[1]), store: store, now: .now) else {
            throw Problem.unauthorized("the device token is not known to this server; enrol the device")
        }
        if device.isRevoked { throw Problem.revoked(device.id) }
        return device
    }

    // MARK: Enrolment

    struct EnrolRequest: Codable {
        let code: String
        /// An existing replica, kept when it rejoins a server that lost it (disaster recovery).
        let rejoining: RejoinClaim?
    }

    struct EnrolResponse: Codable {
        let deviceId: String
        let tenant: String
        let user: String
        let role: Role
        let token: String
        let epoch: String
        let serverTime: UInt64
    }

    func enrol(_ request: Request, _ call: Call) async throws -> Response {
        // Per address first: one client guessing codes is slowed alone, and cannot spend the
        // server-wide budget that keeps everyone's guessing slow.
        if let wait = enrolAddressLimiter.take(call.context.clientAddress) {
            throw Problem.tooManyRequests(retryAfter: wait)
        }
        if let wait = enrolLimiter.take("enrol") { throw Problem.tooManyRequests(retryAfter: wait) }
        let body: EnrolRequest = try await decodeJSON(request, call)
        guard body.code.count <= 64 else { throw Problem.badRequest("invalid-code", "code is too long", field: "code") }
        let store = self.store
        let wall = call.wall
        do {
            let enrolment = try await Self.offload {
                try store.enrol(code: body.code, wall: wall, rejoining: body.rejoining)
            }
            // The code's role is the user's now: their devices act under it from their next request.
            devices.forget(tenant: enrolment.tenant, user: enrolment.user)
            logger.info(
                "device enrolled",
                metadata: [
                    "device": "\(enrolment.deviceId)", "tenant": "\(enrolment.tenant)", "user": "\(enrolment.user)",
                ])
            return try Self.json(
                EnrolResponse(
                    deviceId: enrolment.deviceId, tenant: enrolment.tenant, user: enrolment.user, role: enrolment.role,
                    token: enrolment.token, epoch: try store.epoch(of: enrolment.tenant).description,
                    serverTime: wall),
                status: .created)
        } catch let error as DeviceError where error.code == .deviceTaken {
            throw Problem(
                .conflict, error.code.rawValue, "The device is already enrolled", error.message,
                errors: [Problem.FieldError(field: error.field, reason: error.message)])
        } catch let error as DeviceError {
            throw Problem.badRequest(error.code.rawValue, error.message, field: error.field)
        }
    }

    struct EnrolmentRequest: Codable {
        let user: String
        let role: Role
        /// For disaster recovery: the replica ID that will rejoin with this code (and only it).
        let rejoinReplica: String?
    }

    struct EnrolmentResponse: Codable {
        let code: String
        let tenant: String
        let user: String
        let role: Role
        let expiresMs: UInt64
        let enrolment: String
    }

    func createEnrolment(_ request: Request, _ call: Call) async throws -> Response {
        let body: EnrolmentRequest = try await decodeJSON(request, call)
        let device = call.device!
        var rejoin: ReplicaID?
        if let text = body.rejoinReplica {
            guard let replica = ReplicaID(hex: text), replica.rawValue != 0 else {
                throw Problem.badRequest(
                    "invalid-name", "rejoinReplica must be a replica ID of 16 hexadecimal digits",
                    field: "rejoinReplica")
            }
            rejoin = replica
        }
        do {
            // The role is stored on the code and given when it is used: issuing changes no rights.
            let code = try store.createEnrolmentCode(
                tenant: device.tenant, user: body.user, role: body.role, wall: call.wall,
                lifetimeMs: UInt64(config.enrolmentCodeHours) * 3_600_000, actor: device.id, rejoinReplica: rejoin)
            return try Self.json(
                EnrolmentResponse(
                    code: code.code, tenant: code.tenant, user: code.user, role: code.role, expiresMs: code.expiresMs,
                    enrolment: EnrolmentLink(server: config.url, code: code.code, fingerprint: fingerprint).description),
                status: .created)
        } catch let error as DeviceError {
            throw Problem.badRequest(error.code.rawValue, error.message, field: error.field)
        }
    }

    // MARK: Sync

    func push(_ request: Request, _ call: Call) async throws -> Response {
        let device = call.device!
        let (batch, format) = try await decodeMessage(PushBatch.self, request, call)
        guard batch.protocolVersion == SyncProtocol.version else { throw Self.versionProblem(batch.protocolVersion) }
        guard batch.changes.count <= config.limits.maxChangesPerBatch else {
            throw Problem.tooLarge(
                "a push holds at most \(config.limits.maxChangesPerBatch) changes; this one holds \(batch.changes.count)"
            )
        }
        guard batch.replica == device.replica else {
            throw Problem.badRequest(
                "wrong-replica", "replica \(batch.replica.hex) is not this device's replica \(device.id)",
                field: "replica")
        }
        let receipt: ServerStore.Receipt
        do {
            receipt = try await committer.submit(
                ServerStore.Push(
                    batch: batch, tenant: device.tenant, device: device.id,
                    author: Author(user: device.user, device: device.replica)))
        } catch {
            metrics.ingestErrors.increment()
            logger.error("push failed in the store", metadata: ["device": "\(device.id)", "error": "\(error)"])
            throw Problem.unavailable("the server could not store the push; it was not applied — retry")
        }
        metrics.pushBatches.increment()
        metrics.changesIngested.increment(by: Int64(batch.changes.count - receipt.ack.rejected.count))
        metrics.changesRejected.increment(by: Int64(receipt.ack.rejected.count))
        return try Self.message(receipt.ack, format: format)
    }

    func pull(_ request: Request, _ call: Call) async throws -> Response {
        let device = call.device!
        let (asked, format) = try await decodeMessage(PullRequest.self, request, call)
        guard asked.protocolVersion == SyncProtocol.version else { throw Self.versionProblem(asked.protocolVersion) }
        guard asked.maxChanges >= 1, asked.maxBytes >= 1 else {
            throw Problem.badRequest(
                "invalid-limit", "maxChanges and maxBytes must be at least 1",
                field: asked.maxChanges < 1 ? "maxChanges" : "maxBytes")
        }
        let bounded = PullRequest(
            epoch: asked.epoch, cursor: asked.cursor, maxChanges: min(asked.maxChanges, config.limits.maxPullChanges),
            maxBytes: min(asked.maxBytes, config.limits.maxPullBytes))
        let store = self.store
        if let empty = heads.caughtUp(device.tenant, bounded, wall: call.wall) {
            activity.pulled(device.id, wall: call.wall, cursor: empty.nextCursor)
            metrics.pullBatches.increment()
            return try Self.message(empty, format: format)
        }
        let tenant = device.tenant
        let heads = self.heads
        let response: PullResponse
        do {
            response = try await Self.offload {
                if !heads.isKnown(tenant), let head = try store.head(of: tenant) {
                    heads.record(tenant, epoch: head.epoch, sequence: head.sequence)
                }
                return try store.respond(to: bounded, tenant: tenant, wall: call.wall)
            }
        } catch ServerStore.PullFailure.store(let error) {
            throw error
        } catch ServerStore.PullFailure.staleCursor(let cursor, let collected) {
            metrics.staleCursorRefusals.increment()
            throw Problem(
                .gone, "stale-cursor", "This replica was away longer than the retention period",
                "cursor \(cursor) is older than deletions the server no longer keeps (collected through sequence "
                    + "\(collected)); push your outbox, then re-bootstrap: pull from cursor 0 into an empty replica")
        }
        activity.pulled(device.id, wall: call.wall, cursor: response.nextCursor)
        metrics.pullBatches.increment()
        metrics.changesServed.increment(by: Int64(response.changes.count))
        return try Self.message(response, format: format)
    }

    /// The tenant's bootstrap image (see `BootstrapImages`): a replica file a fresh replica
    /// takes instead of pulling everything, with its SHA-256 as `Repr-Digest` (RFC 9530).
    func image(_ call: Call) async throws -> Response {
        let tenant = call.device!.tenant
        let images = self.images
        guard let image = try await Self.offload({ try images.servable(of: tenant) }),
            let file = FileHandle(forReadingAtPath: image.path)
        else {
            throw Problem(
                .notFound, "no-image", "No bootstrap image",
                "this server has no bootstrap image of the tenant now; pull from cursor 0")
        }
        // Opened before answering: a newer image may replace this one while it is sent, and an
        // open file stays readable after it is removed.
        var headers = HTTPFields()
        headers[.contentType] = Self.imageContentType
        headers[.contentLength] = String(image.bytes)
        headers[.cacheControl] = "no-store"
        headers[HTTPField.Name("Repr-Digest")!] = "sha-256=:\(image.digest):"
        metrics.imagesServed.increment()
        let body = ResponseBody { writer in
            defer { try? file.close() }
            var sent = 0
            while sent < image.bytes, let chunk = try file.read(upToCount: min(256 * 1024, image.bytes - sent)),
                !chunk.isEmpty
            {
                try await writer.write(ByteBuffer(bytes: chunk))
                sent += chunk.count
            }
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: headers, body: body)
    }

    static let imageContentType = "application/vnd.sqlite3"

    static func versionProblem(_ version: UInt8) -> Problem {
        Problem(
            .badRequest, "unsupported-protocol-version", "Unsupported protocol version",
            "this server speaks sync protocol \(SyncProtocol.version), not \(version); upgrade the client")
    }

    /// Server-sent events: `event: changes` with the tenant's newest sequence whenever a push
    /// commits, and a comment every 15 s so proxies and clients see the stream alive.
    func live(_ call: Call) throws -> Response {
        let device = call.device!
        let slot: LiveStreamSlots.Slot
        do {
            slot = try liveSlots.take(device: device.id, tenant: device.tenant)
        } catch .device(let open) {
            throw Problem(
                .tooManyRequests, "too-many-streams", "Too many live streams",
                "this device has \(open) live streams open, the most one device may hold; close one first",
                retryAfter: 15)
        } catch .tenant(let open) {
            throw Problem(
                .tooManyRequests, "too-many-streams", "Too many live streams",
                "this tenant has \(open) live streams open, the most one tenant may hold; retry later",
                retryAfter: 15)
        }
        let notifier = self.notifier
        let metrics = self.metrics
        let store = self.store
        let closed = call.context.closed
        var headers = HTTPFields()
        headers[.contentType] = "text/event-stream"
        headers[.cacheControl] = "no-store"
        let revoked = self.devices
        let body = ResponseBody { writer in
            // One stream per follower carries both the tenant's new sequences and the heartbeat
            // (`ChangeNotifier.heartbeat`), so an event costs one task wake-up, not two.
            let (events, sink) = notifier.subscribe(tenant: device.tenant)
            // A client that went away ends the stream now (and gives back its slot), not at the
            // next event or heartbeat.
            closed.whenComplete { _ in sink.finish() }
            let heartbeat = Task {
                while !Task.isCancelled {
                    try? await Task.sleep(for: .seconds(15))
                    sink.yield(ChangeNotifier.heartbeat)
                }
            }
            metrics.liveStreamsOpen.increment()
            defer {
                heartbeat.cancel()
                sink.finish()
                metrics.liveStreamsOpen.decrement()
                slot.release()
            }
            let epoch = (try? store.epoch(of: device.tenant).description) ?? ""
            let first = (try? store.sequence(of: device.tenant)) ?? 0
            try await writer.write(ByteBuffer(string: Self.event(sequence: first, epoch: epoch)))
            // The server's graceful shutdown waits for in-flight requests: end the stream then.
            try await withGracefulShutdownHandler {
                for await sequence in events {
                    if sequence == ChangeNotifier.heartbeat {
                        try await writer.write(ByteBuffer(string: ": keep-alive\n\n"))
                        // Revoked by another process (or before this stream): noticed here.
                        if (try? store.isRevoked(device: device.id)) ?? true { break }
                    } else {
                        // Revoked through this server: noticed at the next event.
                        if revoked.wasRevoked(device.id) { break }
                        try await writer.write(ByteBuffer(string: Self.event(sequence: sequence, epoch: epoch)))
                    }
                }
            } onGracefulShutdown: {
                sink.finish()
            }
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: headers, body: body)
    }

    static func event(sequence: UInt64, epoch: String) -> String {
        "event: changes\ndata: {\"epoch\":\"\(epoch)\",\"sequence\":\(sequence)}\n\n"
    }

    /// Ends live streams (graceful shutdown: in-flight requests finish, streams close).
    public func closeLiveStreams() { notifier.finishAll() }

    /// Writes gathered device activity (called every few seconds and at shutdown).
    public func flushActivity() throws(StoreError) { try activity.flush(to: store) }

    /// Writes the bootstrap images that are due (see `BootstrapImages.tenantsDue`).
    public func refreshImages(minChanges: UInt64) throws(StoreError) -> [BootstrapImages.Image] {
        var built = [BootstrapImages.Image]()
        for tenant in try images.tenantsDue(minChanges: minChanges) {
            built.append(try images.refresh(tenant: tenant, wall: wall()))
            metrics.imagesBuilt.increment()
        }
        return built
    }

    /// Collects tombstones and superseded log entries now (see ServerStore+Retention.swift).
    public func collectGarbage() throws(StoreError) -> ServerStore.Collection {
        let wall = self.wall()
        // Device cursors in the store must be current: they decide what every device has pulled.
        try flushActivity()
        let collection = try store.collectGarbage(retention: config.retentionMs, wall: wall)
        metrics.tombstonesCollected.increment(by: Int64(collection.tombstones))
        metrics.logEntriesCollected.increment(by: Int64(collection.logEntries))
        metrics.lastCollection.set(Double(wall) / 1000)
        return collection
    }

    // MARK: Metrics

    func metricsResponse(_ request: Request) async throws -> Response {
        if !config.metricsPublic {
            guard let secrets, Self.constantTimeEqual(request.headers[.authorization], "Bearer " + secrets.metricsToken)
            else {
                throw Problem.unauthorized(
                    "/metrics needs `Authorization: Bearer <metricsToken>` from the secrets file")
            }
        }
        let store = self.store
        let metrics = self.metrics
        metrics.refreshConnections()
        metrics.set(
            "kraliki_request_body_bytes_in_flight",
            "Request body bytes reserved now (see limits.maxBodyBytesInFlight).", to: Double(bodies.inFlight))
        // Constant work per scrape: one indexed row and a stat. What costs in proportion to the
        // tenants' data is computed off the request path (`refreshStoreGauges`).
        try await Self.offload {
            let backup = try store.lastBackup()
            metrics.set(
                "kraliki_last_backup_timestamp_seconds", "When the last successful backup finished (0: never).",
                to: Double(backup?.atMs ?? 0) / 1000)
            let size = (try? FileManager.default.attributesOfItem(atPath: store.path)[.size] as? Int) ?? 0
            metrics.set("kraliki_store_bytes", "Size of server.sqlite (without WAL).", to: Double(size))
        }
        var headers = HTTPFields()
        headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
        return Response(
            status: .ok, headers: headers,
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: metrics.registry.emitToBuffer())))
    }

    /// Compares a presented credential with the expected one in time that depends only on
    /// their lengths, so response times do not reveal how much of a guess was right.
    static func constantTimeEqual(_ presented: String?, _ expected: String) -> Bool {
        let a = Array((presented ?? "").utf8)
        let b = Array(expected.utf8)
        var difference = UInt8(a.count == b.count ? 0 : 1)
        for index in 0..<b.count { difference |= (index < a.count ? a[index] : 0) ^ b[index] }
        return difference == 0
    }

    /// Computes the gauges read from the store: enrolled devices, and per tenant its sequence,
    /// the lag of its furthest-behind device and its open conflicts (derived again only for
    /// tenants whose sequence moved since the last refresh). Run by `StoreGaugesService` every
    /// `metricsRefreshSeconds`, never on a request.
    public func refreshStoreGauges() throws(StoreError) {
        let devices = try store.allDevices()
        var lagByTenant = [String: UInt64]()
        for tenant in Set(devices.map(\.tenant)) {
            let sequence = try store.sequence(of: tenant)
            let lag = devices.filter { $0.tenant == tenant && !$0.isRevoked }.map { sequence - min(sequence, $0.cursor) }
            lagByTenant[tenant] = lag.max() ?? 0
            let known = conflictsByTenant.withLock { $0[tenant] }
            let now = ContinuousClock.now
            let due = Duration.seconds(config.metricsRefreshSeconds * Self.conflictsRefreshFactor)
            let conflicts: Int
            if let known, known.sequence == sequence || now - known.at < due {
                conflicts = known.count
            } else {
                conflicts = try store.state(of: tenant).conflicts().count
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
    public func probeStore() {
        do {
            try store.checkWritable()
            storeWritable.store(true, ordering: .relaxed)
        } catch {
            if storeWritable.exchange(false, ordering: .relaxed) {
                logger.error("the store is not writable; /readyz answers 503", metadata: ["error": "\(error)"])
            }
        }
    }

    // MARK: Bodies

    enum Format: Sendable {
        case json
        case binary
    }

    /// The binary protocol content type (the `BinaryBlob` encoding of Domain's messages).
    public static let binaryContentType = "application/vnd.kraliki.sync"

    func readBody(_ request: Request, limit: Int) async throws -> ByteBuffer {
        if let length = request.headers[.contentLength].flatMap(Int.init), length > limit {
            throw Problem.tooLarge("the body is \(length) bytes; the limit is \(limit)")
        }
        do {
            return try await request.body.collect(upTo: limit)
        } catch {
            throw Problem.tooLarge("the body is larger than the limit of \(limit) bytes")
        }
    }

    func format(of request: Request) throws -> Format {
        let header = request.headers[.contentType]
        // The common spellings first, without splitting and lowercasing (a measurable share of
        // an empty pull's CPU).
        if header == "application/json" { return .json }
        if header == Self.binaryContentType { return .binary }
        let type = header?.split(separator: ";").first?.trimmingCharacters(in: .whitespaces).lowercased()
        switch type {
        case "application/json": return .json
        case Self.binaryContentType: return .binary
        default:
            throw Problem.unsupportedMediaType(
                "send application/json or \(Self.binaryContentType), not \(type ?? "no Content-Type")")
        }
    }

    func decodeMessage<M: BinaryBlob & Codable>(
        _ type: M.Type, _ request: Request, _ call: Call
    ) async throws -> (M, Format) {
        let format = try format(of: request)
        switch format {
        case .json: return (try await decodeJSON(request, call), .json)
        case .binary:
            let body = try await readBody(request, limit: call.bodyLimit)
            do throws(BinaryDecodingError) {
                return (try M(blob: body.readableBytesView), .binary)
            } catch  where error.code == .unsupportedVersion {
                throw Problem(
                    .badRequest, "unsupported-protocol-version", "Unsupported protocol version",
                    "this server speaks sync protocol \(SyncProtocol.version): \(error); upgrade the client")
            } catch {
                throw Problem.badRequest("malformed-body", "the binary body cannot be decoded: \(error)")
            }
        }
    }

    func decodeJSON<T: Codable>(_ request: Request, _ call: Call) async throws -> T {
        let body = try await readBody(request, limit: call.bodyLimit)
        if try format(of: request) != .json {
            throw Problem.unsupportedMediaType("this route takes application/json")
        }
        let bytes = body.readableBytesView
        // One pass over the bytes before decoding: depth, duplicated keys, top-level keys.
        let scan = JSONKeys.scan(bytes, depthLimit: config.limits.maxJSONDepth)
        if scan.deepest > config.limits.maxJSONDepth {
            throw Problem.badRequest("too-deep", "the JSON nests deeper than \(config.limits.maxJSONDepth) levels")
        }
        if let duplicate = scan.duplicate {
            throw Problem.badRequest("malformed-body", "the field \(duplicate) appears twice", field: duplicate)
        }
        let data = Data(bytes)
        let value: T
        do {
            value = try JSONDecoder().decode(T.self, from: data)
        } catch {
            throw Problem.badRequest("malformed-body", JSONKeys.describe(error), field: JSONKeys.field(of: error))
        }
        let unknown: [String]
        if let flat = T.self as? any FlatJSONMessage.Type {
            unknown = scan.topLevel.filter { !flat.jsonKeys.contains($0) }
        } else {
            unknown = (try? JSONKeys.unknownKeys(in: data, knownBy: value)) ?? []
        }
        if let first = unknown.first {
            throw Problem.badRequest(
                "unknown-field", "\(first) is not a field of this request (the server sets tenant, owner and sequence)",
                field: first)
        }
        return value
    }

    static func json(_ value: some Encodable, status: HTTPResponse.Status = .ok) throws -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        return Response(
            status: status, headers: headers,
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: try encoder.encode(value))))
    }

    static func message<M: BinaryBlob & Codable>(_ message: M, format: Format) throws -> Response {
        switch format {
        case .json: return try json(message)
        case .binary:
            var headers = HTTPFields()
            headers[.contentType] = binaryContentType
            return Response(
                status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: message.encodedBlob())))
        }
    }

    /// Runs blocking store work on a dispatch queue, off the event loops and the cooperative pool
    /// (pushes, pulls, conflicts, readiness and metrics; the small indexed reads of
    /// authentication and admin lists run inline).
    static func offload<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(with: Result { try work() }) }
        }
    }
}

// MARK: Response bodies

struct DeviceInfo: Codable {
    let device: DeviceRecord
    let epoch: String
    let serverTime: UInt64
    let url: String
}

struct ConflictList: Codable {
    let conflicts: [Conflict]
}

/// A device and how healthy its sync is.
struct DeviceHealth: Codable {
    let device: DeviceRecord
    /// Changes of its tenant it has not pulled yet.
    let lagChanges: UInt64

    init(_ device: DeviceRecord, tenantSequence: UInt64) {
        self.device = device
        self.lagChanges = tenantSequence - min(tenantSequence, device.cursor)
    }
}

struct DeviceList: Codable {
    let devices: [DeviceHealth]
}

struct UserInfo: Codable {
    let name: String
    let role: Role
}

struct UserList: Codable {
    let users: [UserInfo]
}

struct AuditEntry: Codable {
    let atMs: UInt64
    let actor: String
    let action: String
    let detail: String
}

struct PendingCodeList: Codable {
    let codes: [PendingCode]
}

struct AuditLog: Codable {
    let entries: [AuditEntry]
}
