import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// `GET /v1/sync/image`: the tenant's bootstrap image (see `BootstrapImages`), a replica file a
/// fresh replica takes instead of pulling everything, with its SHA-256 as `Repr-Digest`
/// (RFC 9530). It reads a whole tenant, so it costs more of the device's rate limit.
struct ImageController {
    let runtime: ServerRuntime

    static let contentType = "application/vnd.sqlite3"

    func addRoutes(to group: RouterGroup<DeviceRequestContext>) {
        group.routes(for: .anyDevice, cost: DeviceAccessMiddleware.wholeTenantCost, runtime: runtime)
            .get("sync/image", use: image)
    }

    @Sendable func image(_ request: Request, _ context: DeviceRequestContext) async throws -> Response {
        let tenant = context.device.tenant
        let images = runtime.images
        guard let image = try await BlockingWork.run({ try images.servable(of: tenant) }),
            let file = FileHandle(forReadingAtPath: image.path)
        else {
            throw Problem(
                .notFound, "no-image", "No bootstrap image",
                "this server has no bootstrap image of the tenant now; pull from cursor 0")
        }
        // Opened before answering: a newer image may replace this one while it is sent, and an
        // open file stays readable after it is removed.
        var headers = HTTPFields()
        headers[.contentType] = Self.contentType
        headers[.contentLength] = String(image.bytes)
        headers[.cacheControl] = "no-store"
        headers[HTTPField.Name("Repr-Digest")!] = "sha-256=:\(image.digest):"
        runtime.metrics.imagesServed.increment()
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
}
