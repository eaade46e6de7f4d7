import AsyncHTTPClient
import CRDT
import Domain
import DomainTestSupport
import Foundation
import LocalStorage
import NIOHTTP1
import Replica
import ServerTestSupport
import StoreSupport
import SyncServer
import Testing

/// Every route × every kind of caller (× every kind of object for routes that name one):
/// the expected status is committed here as a table, and every cell is checked against a real
/// server over HTTP/2 with TLS.
@Suite("Authorization matrix")
struct AuthorizationMatrixTests {
    /// Columns: no token, bad token, revoked device, another tenant's admin device, same-tenant
    /// agent, supervisor, admin.
    static let principals = ["none", "bad", "revoked", "other-tenant", "agent", "supervisor", "admin"]

    /// Rows: "METHOD path [object]". Objects: own (the caller's own device), same (another
    /// device of the caller's tenant… for "other-tenant" callers, of THEIR tenant), other (a
    /// device of a tenant that is not the caller's).
    static let expected: [String: [Int]] = [
        //                                            none bad revoked other agent super admin
        "GET /healthz": [200, 200, 200, 200, 200, 200, 200],
        "GET /readyz": [200, 200, 200, 200, 200, 200, 200],
        "GET /metrics": [401, 401, 401, 401, 401, 401, 401],  // the metrics token only, never a device's
        "POST /v1/enroll": [400, 400, 400, 400, 400, 400, 400],  // a bogus code, whoever sends it
        "GET /v1/device": [401, 401, 401, 200, 200, 200, 200],
        "POST /v1/sync/push": [401, 401, 401, 200, 200, 200, 200],
        "POST /v1/sync/pull": [401, 401, 401, 200, 200, 200, 200],
        "GET /v1/sync/live": [401, 401, 401, 200, 200, 200, 200],
        "GET /v1/sync/image": [401, 401, 401, 200, 200, 200, 200],  // each tenant's own image
        "GET /v1/admin/conflicts": [401, 401, 401, 200, 403, 200, 200],
        "GET /v1/admin/devices": [401, 401, 401, 200, 403, 403, 200],
        "GET /v1/admin/users": [401, 401, 401, 200, 403, 403, 200],
        "GET /v1/admin/audit": [401, 401, 401, 200, 403, 403, 200],
        "GET /v1/admin/enrolments": [401, 401, 401, 200, 403, 403, 200],
        "POST /v1/admin/enrolments/{id}/revoke same": [401, 401, 401, 200, 403, 403, 200],
        "POST /v1/admin/enrolments/{id}/revoke other": [401, 401, 401, 404, 403, 403, 404],
        "POST /v1/admin/enrolments": [401, 401, 401, 201, 403, 403, 201],
        "POST /v1/admin/devices/{id}/revoke own": [401, 401, 401, 200, 403, 403, 200],
        "POST /v1/admin/devices/{id}/revoke same": [401, 401, 401, 200, 403, 403, 200],
        "POST /v1/admin/devices/{id}/revoke other": [401, 401, 401, 404, 403, 403, 404],
    ]

    @Test("every route × caller × object answers the committed status; tenants never see each other")
    func matrix() async throws {
        let server = try await RunningServer.start {
            $0.limits.enrolmentBurst = 1_000
            $0.limits.enrolmentBurstPerAddress = 1_000
        }
        let raw = try RawClient(server: server)
        // Every route the router registers, and nothing else.
        let routes = Set(SyncServerApp.router(server.runtime).routes.map { "\($0.method.rawValue) \($0.path)" })
        let rows = Set(Self.expected.keys.map { $0.split(separator: " ").prefix(2).joined(separator: " ") })
        #expect(routes == rows, "the table and the server's routes differ")

        // Both tenants have a bootstrap image; acme's holds a record globex must never see.
        let writer = try await server.enrolReplica(in: server.directory.sub("writer"), user: "writer")
        try writer.store.write(wall: ServerRuntime.systemWall()) { state, context throws(ValidationError) in
            try state.createContact(ContactDraft(name: "Acme Secret Contact"), context)
        }
        _ = try await writer.sync()
        await writer.close()
        for tenant in ["acme", "globex"] {
            try server.runtime.images.refresh(tenant: tenant, wall: ServerRuntime.systemWall())
        }

        let revoked = try await raw.enrol(server, user: "gone", role: .admin)
        _ = try server.store.revoke(device: revoked.id, tenant: "acme", actor: "test", wall: ServerRuntime.systemWall())

        var mismatches = [String]()
        var cells = 0
        for (row, statuses) in Self.expected.sorted(by: { $0.key < $1.key }) {
            let parts = row.split(separator: " ").map(String.init)
            let method = HTTPMethod(rawValue: parts[0])
            for (column, principal) in Self.principals.enumerated() {
                // Fresh callers per cell, so a revoke in one cell cannot change another.
                let caller: (id: String, token: String)?
                let callerTenant = principal == "other-tenant" ? "globex" : "acme"
                switch principal {
                case "none": caller = nil
                case "bad": caller = ("0000000000000000", "kst_not-a-real-token")
                case "revoked": caller = revoked
                case "other-tenant": caller = try await raw.enrol(server, tenant: "globex", user: "root", role: .admin)
                default:
                    caller = try await raw.enrol(server, user: principal, role: Role(rawValue: principal)!)
                }
                var path = parts[1]
                if parts.count == 3 && path.contains("/enrolments/") {
                    // A fresh pending code of the caller's tenant, or of the other one.
                    let tenant = parts[2] == "same" ? callerTenant : (callerTenant == "acme" ? "globex" : "acme")
                    path = path.replacingOccurrences(of: "{id}", with: try Self.freshCodeID(server, tenant: tenant))
                } else if parts.count == 3 {
                    let target: String
                    switch parts[2] {
                    case "own": target = caller?.id ?? "0000000000000001"
                    case "same":
                        target = try await raw.enrol(server, tenant: callerTenant, user: "victim", role: .agent).id
                    default:
                        target = try await raw.enrol(
                            server, tenant: callerTenant == "acme" ? "globex" : "acme", user: "stranger", role: .agent
                        ).id
                    }
                    path = path.replacingOccurrences(of: "{id}", with: target)
                }
                let answer = try await request(raw, method, path, caller: caller)
                cells += 1
                if answer.status != statuses[column] {
                    mismatches.append(
                        "\(row) as \(principal): \(answer.status), expected \(statuses[column]) — \(answer.text)")
                }
                if answer.status >= 400 && !answer.isProblem {
                    mismatches.append("\(row) as \(principal): \(answer.status) without a problem document")
                }
            }
        }
        #expect(
            mismatches.isEmpty, "\(mismatches.count) of \(cells) cells differ:\n\(mismatches.joined(separator: "\n"))")
        #expect(cells == Self.expected.count * Self.principals.count)

        // Scoping: another tenant's admin lists only its own devices and pulls none of acme's data.
        let intruder = try await raw.enrol(server, tenant: "globex", user: "spy", role: .admin)
        let acmeDevices = try server.store.devices(tenant: "acme").map(\.id)
        let listed = try await raw.send(.GET, "/v1/admin/devices", token: intruder.token)
        #expect(listed.status == 200)
        #expect(acmeDevices.allSatisfy { !listed.text.contains($0) }, "another tenant's devices leaked")
        let image = try await raw.send(.GET, "/v1/sync/image", token: intruder.token)
        #expect(image.status == 200)
        #expect(image.body.count == server.runtime.images.image(of: "globex")?.bytes, "not globex's own image")
        #expect(image.body.range(of: Data("Acme Secret Contact".utf8)) == nil, "another tenant's image leaked")
        let acmeImage = try Data(contentsOf: URL(fileURLWithPath: server.runtime.images.image(of: "acme")!.path))
        #expect(acmeImage.range(of: Data("Acme Secret Contact".utf8)) != nil, "the check above would not see a leak")
        await raw.shutdown()
        await server.stop()
    }

    /// The ID of a new pending enrolment code of `tenant`.
    static func freshCodeID(_ server: RunningServer, tenant: String) throws -> String {
        let wall = ServerRuntime.systemWall()
        let before = Set(try server.store.pendingCodes(tenant: tenant, wall: wall).map(\.id))
        _ = try server.code(tenant: tenant, user: "pending")
        let after = try server.store.pendingCodes(tenant: tenant, wall: wall).map(\.id)
        return try #require(after.first { !before.contains($0) })
    }

    /// One request as `caller`, with a valid body where the route needs one.
    func request(
        _ raw: RawClient, _ method: HTTPMethod, _ path: String, caller: (id: String, token: String)?
    )
        async throws -> RawClient.Answer
    {
        let token = caller?.token
        switch path {
        case "/v1/enroll": return try await raw.send(method, path, token: token, json: #"{"code":"BOGUS-CODE"}"#)
        case "/v1/sync/push":
            let replica = caller?.id ?? "0000000000000001"
            return try await raw.send(
                method, path, token: token, json: #"{"protocolVersion":1,"replica":"\#(replica)","changes":[]}"#)
        case "/v1/sync/pull":
            return try await raw.send(
                method, path, token: token, json: #"{"protocolVersion":1,"cursor":0,"maxChanges":10,"maxBytes":10000}"#)
        case "/v1/admin/enrolments" where method == .POST:
            return try await raw.send(method, path, token: token, json: #"{"user":"newbie","role":"agent"}"#)
        case "/v1/sync/live": return try await raw.head(method, path, token: token)
        default:
            return try await raw.send(method, path, token: token, body: method == .POST ? [] : nil)
        }
    }
}
