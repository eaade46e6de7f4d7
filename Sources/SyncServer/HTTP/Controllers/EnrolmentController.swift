import Hummingbird

/// `POST /v1/enroll`: a device exchanges a one-time code for its bearer token. Open to anyone,
/// so it takes small bodies and is rate-limited per client address and server-wide.
struct EnrolmentController {
    let runtime: ServerRuntime

    /// The body limit of routes open to anyone (a code of 64 characters at most, and a rejoin
    /// claim): strangers cannot hold the server-wide body budget that devices' pushes need.
    static let bodyLimit = 16 * 1024

    var bodyLimit: Int { min(runtime.config.limits.maxBodyBytes, Self.bodyLimit) }

    func addRoutes(to group: RouterGroup<SyncRequestContext>) {
        // A group of its own: middleware added to `group` itself would wrap every route
        // registered on it later, the devices' too.
        group.group().add(middleware: BodyBudgetMiddleware(runtime: runtime, limit: bodyLimit))
            .post("enroll", use: enrol)
    }

    @Sendable func enrol(_ request: Request, _ context: SyncRequestContext) async throws -> Response {
        // Per address first: one client guessing codes is slowed alone, and cannot spend the
        // server-wide budget that keeps everyone's guessing slow.
        if let wait = runtime.enrolAddressLimiter.take(context.clientAddress) {
            throw Problem.tooManyRequests(retryAfter: wait)
        }
        if let wait = runtime.enrolLimiter.take("enrol") { throw Problem.tooManyRequests(retryAfter: wait) }
        let body: EnrolRequest = try await runtime.bodyReader.json(request, limit: bodyLimit)
        guard body.code.count <= 64 else { throw Problem.badRequest("invalid-code", "code is too long", field: "code") }
        let store = runtime.store
        let wall = runtime.wall()
        do {
            let enrolment = try await store.enrol(code: body.code, wall: wall, rejoining: body.rejoining)
            // The code's role is the user's now: their devices act under it from their next request.
            runtime.devices.forget(tenant: enrolment.tenant, user: enrolment.user)
            runtime.logger.info(
                "device enrolled",
                metadata: [
                    "device": "\(enrolment.deviceId)", "tenant": "\(enrolment.tenant)", "user": "\(enrolment.user)",
                ])
            return try Response.json(
                EnrolResponse(
                    deviceId: enrolment.deviceId, tenant: enrolment.tenant, user: enrolment.user, role: enrolment.role,
                    token: enrolment.token, epoch: try await store.epoch(of: enrolment.tenant).description,
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
}
