import Hummingbird

/// Finds the device a request's bearer token belongs to and puts it in the context; answers 401
/// for a missing, malformed or unknown token and for a revoked device (whose `revoked` problem
/// tells the replica to stop and keep its data). Every request checks the revoked column
/// (`DeviceCache`), so a device revoked by another process is refused at its next request.
struct DeviceAuthenticator: RouterMiddleware {
    typealias Context = SyncRequestContext
    let runtime: ServerRuntime

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    )
        async throws -> Response
    {
        var context = context
        context.device = try await authenticate(request)
        return try await next(request, context)
    }

    func authenticate(_ request: Request) async throws -> DeviceRecord {
        guard let header = request.headers[.authorization] else {
            throw Problem.unauthorized("send the device token as `Authorization: Bearer <token>`")
        }
        let parts = header.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer", parts[1].count <= 256 else {
            throw Problem.unauthorized("the Authorization header must be `Bearer <token>`")
        }
        guard let device = try await runtime.devices.device(token: String(parts[1]), store: runtime.store, now: .now)
        else {
            throw Problem.unauthorized("the device token is not known to this server; enrol the device")
        }
        if device.isRevoked { throw Problem.revoked(device.id) }
        return device
    }
}
