import CRDT
import CRDTTestSupport
import Domain
import DomainTestSupport
import Foundation
import LocalStorage
import NIOHTTP1
import ServerTestSupport
import StoreSupport
import SyncServer
import Synchronization
import Testing

/// Drill 10 (issue #7): 3 tenants per schedule, several users and devices each, random
/// enrolments with roles, role changes, revocations, pushes, pulls, admin reads and
/// cross-tenant attempts. Every answer is checked: no other tenant's names or IDs appear in
/// it, no push changes another tenant, a revoked device is refused on its very next request.
/// Each schedule has its own tenant names, so one server serves all of them.
@Suite("Tenant isolation drill")
struct TenantIsolationDrillTests {
    @Test("1,000 random schedules over 3 tenants: 0 leaks, 0 cross-tenant writes, revoked devices refused at once")
    func tenantIsolation() async throws {
        let seeds = FuzzSettings.seeds(count: 1_000, longCount: 10_000, base: 0x7E7A_0150)
        print("tenant isolation: \(seeds.count) schedules from seed \(seeds[0]) (replay one with KRALIKI_SEED=N)")
        let server = try await RunningServer.start {
            // Enrolment is rate-limited server-wide; the drill enrols thousands of devices.
            $0.limits.enrolmentsPerSecond = 1_000_000
            $0.limits.enrolmentBurst = 1_000_000
            $0.limits.enrolmentsPerSecondPerAddress = 1_000_000
            $0.limits.enrolmentBurstPerAddress = 1_000_000
        }
        let raw = try RawClient(server: server)
        let totals = SharedTotals()
        // Schedules are independent (own tenants), so a few run at once; each is deterministic
        // from its seed whatever the interleaving.
        let lanes = 4
        try await withThrowingTaskGroup(of: Void.self) { group in
            for lane in 0..<lanes {
                group.addTask {
                    for (index, seed) in seeds.enumerated() where index % lanes == lane {
                        var schedule = Schedule(seed: seed, server: server, raw: raw)
                        try await schedule.run()
                        totals.value.withLock { $0.add(schedule.totals) }
                    }
                }
            }
            try await group.waitForAll()
        }
        let figures = totals.value.withLock { $0 }
        print(
            "tenant isolation: seeds run \(seeds.count), requests sent \(figures.requests), devices \(figures.devices), "
                + "pushes \(figures.pushes), pulls \(figures.pulls), admin reads \(figures.adminReads), revocations "
                + "\(figures.revocations), cross-tenant attempts \(figures.crossTenant), leaks = \(figures.leaks.count), "
                + "cross-tenant writes = \(figures.crossWrites), revoked accepted = \(figures.revokedAccepted), "
                + "wrong answers = \(figures.wrong.count)")
        let (leaks, wrong) = (figures.leaks.count, figures.wrong.count)
        #expect(leaks == 0, "\(figures.leaks.prefix(5).joined(separator: "\n"))")
        #expect(figures.crossWrites == 0)
        #expect(figures.revokedAccepted == 0)
        #expect(wrong == 0, "\(figures.wrong.prefix(5).joined(separator: "\n"))")
        #expect(seeds.count == 1 || figures.revocations > 100, "the schedules revoked too little to test revocation")
        await raw.shutdown()
        await server.stop()
    }

    final class SharedTotals: Sendable {
        let value = Mutex(Totals())
    }

    struct Totals {
        var requests = 0
        var devices = 0
        var pushes = 0
        var pulls = 0
        var adminReads = 0
        var revocations = 0
        var crossTenant = 0
        var crossWrites = 0
        var revokedAccepted = 0
        var leaks = [String]()
        var wrong = [String]()

        mutating func add(_ other: Totals) {
            requests += other.requests
            devices += other.devices
            pushes += other.pushes
            pulls += other.pulls
            adminReads += other.adminReads
            revocations += other.revocations
            crossTenant += other.crossTenant
            crossWrites += other.crossWrites
            revokedAccepted += other.revokedAccepted
            leaks += other.leaks
            wrong += other.wrong
        }
    }

    /// A device as the model knows it.
    struct Device {
        let id: String
        let token: String
        let tenant: Int
        let user: String
        var revoked = false
        var localSequence: UInt64 = 0
        var logical: UInt16 = 0
    }

    /// One random schedule over its own three tenants.
    struct Schedule {
        let seed: UInt64
        let server: RunningServer
        let raw: RawClient
        var random: SeededRandom
        let tenants: [String]
        var devices = [Device]()
        /// Each user's role: the last one given (a role change applies to the user's devices
        /// from their next request on; the sets hold one role — the tolerance for a role "in
        /// flux" below never applies since the server forgets the cached devices).
        var rolesByUser = [[String: Set<Role>]](repeating: [:], count: 3)
        /// The entities each tenant's devices pushed and the server accepted.
        var entitiesByTenant = [Set<String>](repeating: [], count: 3)
        var totals = Totals()
        let wall = ServerRuntime.systemWall()

        init(seed: UInt64, server: RunningServer, raw: RawClient) {
            self.seed = seed
            self.server = server
            self.raw = raw
            random = SeededRandom(seed: seed)
            let tag = String(seed, radix: 36)
            tenants = (0..<3).map { "iso\(tag)t\($0)" }
        }

        mutating func run() async throws {
            for tenant in 0..<3 {
                let admin = try await raw.enrol(server, tenant: tenants[tenant], user: "boss", role: .admin)
                devices.append(Device(id: admin.id, token: admin.token, tenant: tenant, user: "boss"))
                rolesByUser[tenant]["boss"] = [.admin]
                totals.requests += 1
                totals.devices += 1
            }
            for _ in 0..<random.int(8...16) {
                switch random.int(0...99) {
                case 0..<18: try await enrolDevice()
                case 18..<26: try await revoke()
                case 26..<50: try await push()
                case 50..<70: try await pull()
                case 70..<88: try await adminRead()
                default: try await crossTenantAttempt()
                }
            }
            try checkFinalState()
        }

        // MARK: Operations

        /// An admin of a tenant creates a code with a random role (a new user, or a new role
        /// for an existing one) and a new device enrols with it.
        mutating func enrolDevice() async throws {
            guard let admin = pickDevice(where: { [rolesByUser] in Self.isAdmin($0, rolesByUser) }) else { return }
            let tenant = devices[admin].tenant
            let user = random.pick(["boss", "ana", "ben", "cyril", "dana"])
            let role = random.pick(Role.allCases)
            let answer = try await send(
                admin, .POST, "/v1/admin/enrolments", json: #"{"user":"\#(user)","role":"\#(role.rawValue)"}"#)
            guard try expectAccess(admin, granted: true, answer) else { return }
            // An admin whose role was just changed may already be refused.
            if answer.status == 403 && rolesByUser[devices[admin].tenant][devices[admin].user]!.count > 1 { return }
            guard answer.status == 201, let code = answer.json?["code"] as? String else {
                return wrong("enrolment code: \(answer.status) \(answer.text)")
            }
            let enrolled = try await raw.send(.POST, "/v1/enroll", json: #"{"code":"\#(code)"}"#)
            totals.requests += 1
            guard enrolled.status == 201, let id = enrolled.json?["deviceId"] as? String,
                let token = enrolled.json?["token"] as? String
            else { return wrong("enrol: \(enrolled.status) \(enrolled.text)") }
            // The code's role is given when the code is used: the server forgets the user's
            // cached devices then.
            rolesByUser[tenant][user] = [role]
            checkNoLeak(enrolled, to: tenant, "enrol")
            devices.append(Device(id: id, token: token, tenant: tenant, user: user))
            totals.devices += 1
        }

        /// An admin revokes a device of its own tenant; that device's very next request is refused.
        mutating func revoke() async throws {
            guard let admin = pickDevice(where: { [rolesByUser] in Self.isAdmin($0, rolesByUser) && !$0.revoked })
            else { return }
            let candidates = devices.indices.filter { devices[$0].tenant == devices[admin].tenant }
            let target = random.pick(candidates)
            let answer = try await send(admin, .POST, "/v1/admin/devices/\(devices[target].id)/revoke")
            if answer.status == 403 && rolesByUser[devices[admin].tenant][devices[admin].user]!.count > 1 { return }
            guard answer.status == 200 else { return wrong("revoke own device: \(answer.status) \(answer.text)") }
            checkNoLeak(answer, to: devices[admin].tenant, "revoke")
            devices[target].revoked = true
            totals.revocations += 1
            // The very next request of the revoked device, on a random route.
            let path = random.pick(["/v1/device", "/v1/sync/pull", "/v1/sync/push", "/v1/admin/devices"])
            let next: RawClient.Answer
            switch path {
            case "/v1/sync/pull": next = try await send(target, .POST, path, json: Self.pullJSON)
            case "/v1/sync/push":
                next = try await send(
                    target, .POST, path, json: #"{"protocolVersion":1,"replica":"\#(devices[target].id)","changes":[]}"#
                )
            default: next = try await send(target, .GET, path)
            }
            if next.status != 401 || next.problemType != "device-revoked" {
                totals.revokedAccepted += 1
                wrong("revoked device's next request \(path): \(next.status) \(next.text.prefix(200))")
            }
        }

        /// A device pushes a contact or a schedule entry named after its tenant.
        mutating func push() async throws {
            guard let index = pickDevice(where: { _ in true }) else { return }
            devices[index].localSequence += 1
            devices[index].logical += 1
            let device = devices[index]
            let replica = ReplicaID(hex: device.id)!
            let stamp = HLC(physical: wall, logical: device.logical, replica: replica)
            let context = WriteContext(author: Author(user: device.user, device: replica), stamp: stamp)
            var state = TenantState()
            let marker = "<\(tenants[device.tenant])>"
            let delta: TenantState
            if random.chance(0.5) {
                delta = try state.createContact(
                    ContactDraft(name: "\(marker) contact \(device.localSequence)"), context)
            } else {
                delta = try state.addScheduleEntry(
                    ScheduleDraft(
                        title: "\(marker) call-back", start: Int64(wall), end: Int64(wall) + 1_800_000,
                        assignees: [device.user]), context)
            }
            let batch = PushBatch(
                replica: replica, epoch: nil, changes: [PushChange(localSequence: device.localSequence, change: delta)])
            let others = try (0..<3).filter { $0 != device.tenant }.map { try server.store.sequence(of: tenants[$0]) }
            let answer = try await send(
                index, .POST, "/v1/sync/push", body: Array(try JSONEncoder().encode(batch)))
            totals.pushes += 1
            let othersAfter = try (0..<3).filter { $0 != device.tenant }.map {
                try server.store.sequence(of: tenants[$0])
            }
            if others != othersAfter {
                totals.crossWrites += 1
                wrong("a push to \(tenants[device.tenant]) moved another tenant: \(others) → \(othersAfter)")
            }
            guard try expectAccess(index, granted: true, answer) else { return }
            guard answer.status == 200, (answer.json?["rejected"] as? [Any])?.isEmpty == true else {
                return wrong("push: \(answer.status) \(answer.text.prefix(300))")
            }
            checkNoLeak(answer, to: device.tenant, "push ack")
            entitiesByTenant[device.tenant].insert(EntityID(creation: stamp).description)
        }

        /// A device pulls its tenant from cursor 0: exactly its tenant's entities, nothing else.
        mutating func pull() async throws {
            guard let index = pickDevice(where: { _ in true }) else { return }
            let device = devices[index]
            let answer = try await send(
                index, .POST, "/v1/sync/pull", contentType: "application/vnd.kraliki.sync",
                body: PullRequest(epoch: nil, cursor: 0, maxChanges: 1_000, maxBytes: 4_000_000).encodedBlob())
            totals.pulls += 1
            guard try expectAccess(index, granted: true, answer) else { return }
            guard answer.status == 200 else { return wrong("pull: \(answer.status) \(answer.text.prefix(300))") }
            checkNoLeak(answer, to: device.tenant, "pull")
            let response = try PullResponse(blob: answer.body)
            var pulled = Set<String>()
            for change in response.changes {
                pulled.formUnion(change.change.contacts.keys.map(\.description))
                pulled.formUnion(change.change.notes.keys.map(\.description))
                pulled.formUnion(change.change.schedule.keys.map(\.description))
            }
            let foreign = pulled.subtracting(entitiesByTenant[device.tenant])
            if !foreign.isEmpty {
                totals.leaks.append("seed \(seed): \(tenants[device.tenant]) pulled entities it never had: \(foreign)")
            }
            if !entitiesByTenant[device.tenant].isSubset(of: pulled) {
                wrong("pull misses own entities: \(entitiesByTenant[device.tenant].subtracting(pulled))")
            }
        }

        /// The admin routes, by any device: refused by role, or only the caller's tenant.
        mutating func adminRead() async throws {
            guard let index = pickDevice(where: { _ in true }) else { return }
            let device = devices[index]
            let roles = rolesByUser[device.tenant][device.user]!
            let path = random.pick(Self.readRoutes.keys.sorted())
            let allowed = Self.readRoutes[path]!
            let needs: (Role) -> Bool = { allowed.contains($0) }
            let answer = try await send(index, .GET, path)
            totals.adminReads += 1
            let granted = roles.contains(where: needs)
            let refused = roles.contains(where: { !needs($0) })
            if device.revoked {
                _ = try expectAccess(index, granted: true, answer)
                return
            }
            if answer.status == 403 && refused { return }
            guard answer.status == 200 && granted else {
                return wrong("\(path) as \(roles): \(answer.status) \(answer.text.prefix(200))")
            }
            checkNoLeak(answer, to: device.tenant, path)
            if path == "/v1/admin/devices" {
                let listed = Set(
                    ((answer.json?["devices"] as? [[String: Any]]) ?? []).compactMap {
                        ($0["device"] as? [String: Any])?["id"] as? String
                    })
                let own = Set(devices.filter { $0.tenant == device.tenant }.map(\.id))
                if !listed.isSubset(of: own) {
                    totals.leaks.append("seed \(seed): device list shows \(listed.subtracting(own))")
                }
                if listed != own { wrong("device list \(listed) is not the tenant's \(own)") }
            }
            if path == "/v1/admin/users" {
                let listed = Set(
                    ((answer.json?["users"] as? [[String: Any]]) ?? []).compactMap { $0["name"] as? String })
                let own = Set(rolesByUser[device.tenant].keys)
                if listed != own { totals.leaks.append("seed \(seed): users \(listed) are not the tenant's \(own)") }
            }
        }

        /// A device tries to reach another tenant: revoke its device, push as its device, name
        /// the tenant in a body. Each must be refused and change nothing.
        mutating func crossTenantAttempt() async throws {
            guard let index = pickDevice(where: { !$0.revoked }) else { return }
            let own = devices[index].tenant
            guard let victim = pickDevice(where: { $0.tenant != own }) else { return }
            totals.crossTenant += 1
            let device = devices[index]
            let before = try server.store.sequence(of: tenants[devices[victim].tenant])
            let answer: RawClient.Answer
            let expected: (Int, String)
            switch random.int(0...3) {
            case 0:
                answer = try await send(index, .POST, "/v1/admin/devices/\(devices[victim].id)/revoke")
                expected = isAdmin(device) ? (404, "not-found") : (403, "forbidden")
            case 1:
                answer = try await send(
                    index, .POST, "/v1/sync/push",
                    json: #"{"protocolVersion":1,"replica":"\#(devices[victim].id)","changes":[]}"#)
                expected = (400, "wrong-replica")
            case 2:
                answer = try await send(
                    index, .POST, "/v1/sync/pull",
                    json:
                        #"{"protocolVersion":1,"cursor":0,"maxChanges":10,"maxBytes":10000,"tenant":"\#(tenants[devices[victim].tenant])"}"#
                )
                expected = (400, "unknown-field")
            default:
                answer = try await send(
                    index, .POST, "/v1/admin/enrolments",
                    json: #"{"user":"intruder","role":"admin","tenant":"\#(tenants[devices[victim].tenant])"}"#)
                expected = isAdmin(device) ? (400, "unknown-field") : (403, "forbidden")
            }
            // An admin whose role was just changed may still be served as one for 2 s.
            let roleInFlux = rolesByUser[device.tenant][device.user]!.count > 1
            if (answer.status, answer.problemType ?? "") != expected && !(roleInFlux && answer.status == 403) {
                if answer.status < 300 {
                    totals.crossWrites += 1
                    totals.leaks.append("seed \(seed): cross-tenant attempt accepted: \(answer.status) \(answer.text)")
                } else if !(roleInFlux && [400, 404].contains(answer.status)) {
                    wrong("cross-tenant attempt: \(answer.status) \(answer.text.prefix(200)), expected \(expected)")
                }
            }
            // The answer may repeat what the attacker itself sent (the ID it named), nothing more.
            checkNoLeak(
                answer, to: device.tenant, "cross-tenant attempt",
                sent: [devices[victim].id, tenants[devices[victim].tenant]])
            if try server.store.sequence(of: tenants[devices[victim].tenant]) != before {
                totals.crossWrites += 1
                wrong("a cross-tenant attempt moved \(tenants[devices[victim].tenant])")
            }
            if let record = try server.store.devices(tenant: tenants[devices[victim].tenant]).first(where: {
                $0.id == devices[victim].id
            }), record.isRevoked != devices[victim].revoked {
                totals.crossWrites += 1
                totals.leaks.append("seed \(seed): another tenant revoked \(devices[victim].id)")
            }
        }

        /// Each tenant's stored state holds exactly what its own devices pushed.
        mutating func checkFinalState() throws {
            for tenant in 0..<3 {
                let state = try server.store.state(of: tenants[tenant])
                let stored = Set(
                    state.contacts.keys.map(\.description) + state.notes.keys.map(\.description)
                        + state.schedule.keys.map(\.description))
                if stored != entitiesByTenant[tenant] {
                    totals.crossWrites += 1
                    totals.leaks.append(
                        "seed \(seed): \(tenants[tenant]) stores \(stored.symmetricDifference(entitiesByTenant[tenant])) "
                            + "that its devices did not push")
                }
            }
        }

        // MARK: Helpers

        /// The roles each read route admits.
        static let readRoutes: [String: Set<Role>] = [
            "/v1/admin/devices": [.admin], "/v1/admin/users": [.admin], "/v1/admin/audit": [.admin],
            "/v1/admin/conflicts": [.admin, .supervisor], "/v1/device": Set(Role.allCases),
        ]

        static let pullJSON = #"{"protocolVersion":1,"cursor":0,"maxChanges":10,"maxBytes":10000}"#

        func isAdmin(_ device: Device) -> Bool { Self.isAdmin(device, rolesByUser) }

        static func isAdmin(_ device: Device, _ rolesByUser: [[String: Set<Role>]]) -> Bool {
            rolesByUser[device.tenant][device.user]!.contains(.admin)
        }

        /// A random device (revoked ones too: their requests must keep failing).
        mutating func pickDevice(where predicate: (Device) -> Bool) -> Int? {
            let matching = devices.indices.filter { predicate(devices[$0]) }
            return matching.isEmpty ? nil : random.pick(matching)
        }

        mutating func send(
            _ index: Int, _ method: HTTPMethod, _ path: String, json: String
        ) async throws -> RawClient.Answer {
            try await send(index, method, path, body: Array(json.utf8))
        }

        mutating func send(
            _ index: Int, _ method: HTTPMethod, _ path: String, contentType: String = "application/json",
            body: [UInt8]? = nil
        ) async throws -> RawClient.Answer {
            totals.requests += 1
            let answer = try await raw.send(
                method, path, token: devices[index].token, contentType: contentType, body: body)
            if devices[index].revoked && answer.status < 300 {
                totals.revokedAccepted += 1
                wrong("revoked device \(devices[index].id) was served \(method) \(path): \(answer.status)")
            }
            return answer
        }

        /// For a revoked device: the answer must be 401 `device-revoked` (false: stop here).
        /// Otherwise true when the route is `granted`.
        mutating func expectAccess(_ index: Int, granted: Bool, _ answer: RawClient.Answer) throws -> Bool {
            if devices[index].revoked {
                if answer.status != 401 || answer.problemType != "device-revoked" {
                    wrong("revoked device answered \(answer.status) \(answer.problemType ?? "")")
                }
                return false
            }
            if !granted && answer.status == 403 { return false }
            return true
        }

        /// No name or ID of the schedule's other tenants appears anywhere in the answer.
        mutating func checkNoLeak(
            _ answer: RawClient.Answer, to tenant: Int, _ what: String, sent: Set<String> = []
        ) {
            let bytes = answer.body
            for other in 0..<3 where other != tenant {
                var needles = [tenants[other]] + devices.filter { $0.tenant == other }.map(\.id)
                needles += entitiesByTenant[other]
                for needle in needles where !sent.contains(needle) && bytes.range(of: Data(needle.utf8)) != nil {
                    totals.leaks.append(
                        "seed \(seed): \(what) to \(tenants[tenant]) shows \(needle) of \(tenants[other])")
                }
            }
        }

        mutating func wrong(_ message: String) {
            totals.wrong.append("seed \(seed) (KRALIKI_SEED=\(seed)): \(message)")
        }
    }
}
