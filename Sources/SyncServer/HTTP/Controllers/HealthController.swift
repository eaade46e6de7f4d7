import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// `/healthz`, `/readyz` and `/metrics`: open routes that answer at constant cost, whoever
/// calls them and whatever the tenants hold.
struct HealthController {
    let runtime: ServerRuntime

    func addRoutes(to group: RouterGroup<SyncRequestContext>) {
        group.get("healthz") { _, _ in try Response.json(["status": "ok"]) }
        group.get("readyz", use: ready)
        group.get("metrics", use: metrics)
    }

    /// The answer of the last background probe (`probeStore`, every 2 s): a caller cannot make
    /// the server take its writer lock, and the body names no path or error (the log has them).
    @Sendable func ready(_ request: Request, _ context: SyncRequestContext) throws -> Response {
        guard runtime.storeWritable.load(ordering: .relaxed) else {
            throw Problem.unavailable("the store is not writable; the server log says why")
        }
        return try Response.json(["status": "ready"])
    }

    /// Prometheus text format; needs the metrics token unless `metricsPublic`.
    @Sendable func metrics(_ request: Request, _ context: SyncRequestContext) async throws -> Response {
        let config = runtime.config
        if !config.metricsPublic {
            guard let secrets = runtime.secrets,
                Self.constantTimeEqual(request.headers[.authorization], "Bearer " + secrets.metricsToken)
            else {
                throw Problem.unauthorized(
                    "/metrics needs `Authorization: Bearer <metricsToken>` from the secrets file")
            }
        }
        let metrics = runtime.metrics
        metrics.refreshConnections()
        metrics.set(
            "kraliki_request_body_bytes_in_flight",
            "Request body bytes reserved now (see limits.maxBodyBytesInFlight).", to: Double(runtime.bodies.inFlight))
        // Constant work per scrape: one indexed row and a stat. What costs in proportion to the
        // tenants' data is computed off the request path (`StoreGaugesService`).
        let backup = try await runtime.store.lastBackup()
        metrics.set(
            "kraliki_last_backup_timestamp_seconds", "When the last successful backup finished (0: never).",
            to: Double(backup?.atMs ?? 0) / 1000)
        metrics.set(
            "kraliki_store_bytes", "Size of server.sqlite (without WAL).", to: Double(await runtime.store.storedBytes())
        )
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
}
