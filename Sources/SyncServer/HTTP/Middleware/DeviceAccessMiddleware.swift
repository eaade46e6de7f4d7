import Hummingbird

/// The access rule of a group of device routes, checked in this order: the device's role (403),
/// then its rate limit (429; `cost` tokens — more for routes that read a whole tenant), then
/// the device is recorded as seen.
struct DeviceAccessMiddleware: RouterMiddleware {
    typealias Context = DeviceRequestContext

    /// Who may call a group's routes, beyond any enrolled, unrevoked device.
    enum Requirement: Sendable {
        case anyDevice
        /// Supervisors and admins (the tenant's conflicts).
        case supervisor
        /// Admins (devices, users, enrolment codes, the audit log).
        case admin
    }

    let runtime: ServerRuntime
    let requirement: Requirement
    let cost: Double

    /// The rate-limit cost of routes that read a whole tenant (its conflicts, its image).
    static let wholeTenantCost: Double = 20

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    )
        async throws -> Response
    {
        let device = context.device
        switch requirement {
        case .supervisor where !device.role.canReadConflicts:
            throw Problem.forbidden("listing the tenant's conflicts needs a supervisor or admin device")
        case .admin where !device.role.canManageDevices:
            throw Problem.forbidden("this needs an admin device")
        default: break
        }
        if let wait = runtime.limiter.take(device.id, cost: cost) { throw Problem.tooManyRequests(retryAfter: wait) }
        runtime.activity.seen(device.id, wall: runtime.wall())
        return try await next(request, context)
    }
}
