import CRDT
import Domain
import Hummingbird

/// `/v1/admin/…`: what supervisors and admins do from their devices — the tenant's conflicts
/// (supervisors and admins), its devices, users, enrolment codes and audit log (admins).
/// Everything is scoped to the calling device's tenant; an ID of another tenant is not found.
struct AdminController {
    let runtime: ServerRuntime

    func addRoutes(to group: RouterGroup<DeviceRequestContext>) {
        group.routes(for: .supervisor, cost: DeviceAccessMiddleware.wholeTenantCost, runtime: runtime)
            .get("conflicts", use: conflicts)
        let admins = group.routes(for: .admin, runtime: runtime)
        admins.get("devices", use: devices)
        admins.post("devices/:id/revoke", use: revokeDevice)
        admins.get("users", use: users)
        admins.post("enrolments", use: createEnrolment)
        admins.get("enrolments", use: enrolments)
        admins.post("enrolments/:id/revoke", use: revokeEnrolment)
        admins.get("audit", use: audit)
    }

    @Sendable func conflicts(_ request: Request, _ context: DeviceRequestContext) async throws -> Response {
        let tenant = context.device.tenant
        let state = try await runtime.store.state(of: tenant)
        return try Response.json(ConflictList(conflicts: state.conflicts()))
    }

    @Sendable func devices(_ request: Request, _ context: DeviceRequestContext) async throws -> Response {
        let tenant = context.device.tenant
        let sequence = try await runtime.store.sequence(of: tenant)
        let devices = try await runtime.store.devices(tenant: tenant).map { DeviceHealth($0, tenantSequence: sequence) }
        return try Response.json(DeviceList(devices: devices))
    }

    @Sendable func revokeDevice(_ request: Request, _ context: DeviceRequestContext) async throws -> Response {
        let id = context.parameters.get("id") ?? ""
        let device = context.device
        do {
            let revoked = try await runtime.store.revoke(
                device: id, tenant: device.tenant, actor: device.id, wall: runtime.wall())
            runtime.devices.forget(device: id)
            return try Response.json(
                DeviceHealth(revoked, tenantSequence: try await runtime.store.sequence(of: device.tenant)))
        } catch let error as DeviceError {
            throw Problem.notFound(error.message)
        }
    }

    @Sendable func users(_ request: Request, _ context: DeviceRequestContext) async throws -> Response {
        let users = try await runtime.store.users(tenant: context.device.tenant).map {
            UserList.User(name: $0.name, role: $0.role)
        }
        return try Response.json(UserList(users: users))
    }

    @Sendable func createEnrolment(_ request: Request, _ context: DeviceRequestContext) async throws -> Response {
        let body: EnrolmentRequest = try await runtime.bodyReader.json(
            request, limit: runtime.config.limits.maxBodyBytes)
        let device = context.device
        var rejoin: ReplicaID?
        if let text = body.rejoinReplica {
            guard let replica = ReplicaID(hex: text), replica.rawValue != 0 else {
                throw Problem.badRequest(
                    "invalid-name", "rejoinReplica must be a replica ID of 16 hexadecimal digits",
                    field: "rejoinReplica")
            }
            rejoin = replica
        }
        let config = runtime.config
        do {
            // The role is stored on the code and given when it is used: issuing changes no rights.
            let code = try await runtime.store.createEnrolmentCode(
                tenant: device.tenant, user: body.user, role: body.role, wall: runtime.wall(),
                lifetimeMs: UInt64(config.enrolmentCodeHours) * 3_600_000, actor: device.id, rejoinReplica: rejoin)
            let link = EnrolmentLink(server: config.url, code: code.code, fingerprint: runtime.fingerprint)
            return try Response.json(
                EnrolmentResponse(
                    code: code.code, tenant: code.tenant, user: code.user, role: code.role, expiresMs: code.expiresMs,
                    enrolment: link.description),
                status: .created)
        } catch let error as DeviceError {
            throw Problem.badRequest(error.code.rawValue, error.message, field: error.field)
        }
    }

    @Sendable func enrolments(_ request: Request, _ context: DeviceRequestContext) async throws -> Response {
        try Response.json(
            PendingCodeList(
                codes: try await runtime.store.pendingCodes(tenant: context.device.tenant, wall: runtime.wall())))
    }

    @Sendable func revokeEnrolment(_ request: Request, _ context: DeviceRequestContext) async throws -> Response {
        let id = context.parameters.get("id") ?? ""
        let device = context.device
        do {
            return try await Response.json(
                runtime.store.revokeCode(
                    id: id.lowercased(), tenant: device.tenant, actor: device.id, wall: runtime.wall()))
        } catch let error as DeviceError {
            throw Problem.notFound(error.message)
        }
    }

    @Sendable func audit(_ request: Request, _ context: DeviceRequestContext) async throws -> Response {
        let entries = try await runtime.store.auditLog(tenant: context.device.tenant).map {
            AuditLog.Entry(atMs: $0.atMs, actor: $0.actor, action: $0.action, detail: $0.detail)
        }
        return try Response.json(AuditLog(entries: entries))
    }
}
