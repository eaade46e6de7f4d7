import CRDT
import Domain
import Hummingbird

/// The sync protocol's requests: `GET /v1/device` (who am I, the epoch, the server's clock),
/// `POST /v1/sync/push` (an outbox batch, group-committed) and `POST /v1/sync/pull` (changes
/// after a cursor), in JSON or the binary encoding.
struct SyncController {
    let runtime: ServerRuntime

    func addRoutes(to group: RouterGroup<DeviceRequestContext>) {
        let devices = group.routes(for: .anyDevice, runtime: runtime)
        devices.get("device", use: device)
        devices.post("sync/push", use: push)
        devices.post("sync/pull", use: pull)
    }

    @Sendable func device(_ request: Request, _ context: DeviceRequestContext) async throws -> Response {
        let device = context.device
        return try Response.json(
            DeviceInfo(
                device: device, epoch: try await runtime.store.epoch(of: device.tenant).description,
                serverTime: runtime.wall(), url: runtime.config.url))
    }

    @Sendable func push(_ request: Request, _ context: DeviceRequestContext) async throws -> Response {
        let device = context.device
        let limits = runtime.config.limits
        let (batch, format) = try await runtime.bodyReader.message(PushBatch.self, request, limit: limits.maxBodyBytes)
        guard batch.protocolVersion == SyncProtocol.version else {
            throw BodyReader.versionProblem(batch.protocolVersion)
        }
        guard batch.changes.count <= limits.maxChangesPerBatch else {
            throw Problem.tooLarge(
                "a push holds at most \(limits.maxChangesPerBatch) changes; this one holds \(batch.changes.count)")
        }
        guard batch.replica == device.replica else {
            throw Problem.badRequest(
                "wrong-replica", "replica \(batch.replica.hex) is not this device's replica \(device.id)",
                field: "replica")
        }
        let receipt: PushReceipt
        do {
            receipt = try await runtime.committer.submit(
                TenantPush(
                    batch: batch, tenant: device.tenant, device: device.id,
                    author: Author(user: device.user, device: device.replica)))
        } catch {
            runtime.metrics.ingestErrors.increment()
            runtime.logger.error("push failed in the store", metadata: ["device": "\(device.id)", "error": "\(error)"])
            throw Problem.unavailable("the server could not store the push; it was not applied — retry")
        }
        let metrics = runtime.metrics
        metrics.pushBatches.increment()
        metrics.changesIngested.increment(by: Int64(batch.changes.count - receipt.ack.rejected.count))
        metrics.changesRejected.increment(by: Int64(receipt.ack.rejected.count))
        return try Response.message(receipt.ack, format: format)
    }

    @Sendable func pull(_ request: Request, _ context: DeviceRequestContext) async throws -> Response {
        let device = context.device
        let limits = runtime.config.limits
        let (asked, format) = try await runtime.bodyReader.message(
            PullRequest.self, request, limit: limits.maxBodyBytes)
        guard asked.protocolVersion == SyncProtocol.version else {
            throw BodyReader.versionProblem(asked.protocolVersion)
        }
        guard asked.maxChanges >= 1, asked.maxBytes >= 1 else {
            throw Problem.badRequest(
                "invalid-limit", "maxChanges and maxBytes must be at least 1",
                field: asked.maxChanges < 1 ? "maxChanges" : "maxBytes")
        }
        let bounded = PullRequest(
            epoch: asked.epoch, cursor: asked.cursor, maxChanges: min(asked.maxChanges, limits.maxPullChanges),
            maxBytes: min(asked.maxBytes, limits.maxPullBytes))
        let wall = runtime.wall()
        let metrics = runtime.metrics
        let heads = runtime.heads
        if let empty = heads.caughtUp(device.tenant, bounded, wall: wall) {
            runtime.activity.pulled(device.id, wall: wall, cursor: empty.nextCursor)
            metrics.pullBatches.increment()
            return try Response.message(empty, format: format)
        }
        let store = runtime.store
        let tenant = device.tenant
        let response: PullResponse
        do {
            if !heads.isKnown(tenant), let head = try await store.head(of: tenant) {
                heads.record(tenant, epoch: head.epoch, sequence: head.sequence)
            }
            response = try await store.respond(to: bounded, tenant: tenant, wall: wall)
        } catch PullFailure.store(let error) {
            throw error
        } catch PullFailure.staleCursor(let cursor, let collected) {
            metrics.staleCursorRefusals.increment()
            throw Problem(
                .gone, "stale-cursor", "This replica was away longer than the retention period",
                "cursor \(cursor) is older than deletions the server no longer keeps (collected through sequence "
                    + "\(collected)); push your outbox, then re-bootstrap: pull from cursor 0 into an empty replica")
        }
        runtime.activity.pulled(device.id, wall: wall, cursor: response.nextCursor)
        metrics.pullBatches.increment()
        metrics.changesServed.increment(by: Int64(response.changes.count))
        return try Response.message(response, format: format)
    }
}
