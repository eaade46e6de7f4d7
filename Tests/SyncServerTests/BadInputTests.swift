import AsyncHTTPClient
import CRDT
import CRDTTestSupport
import Domain
import DomainTestSupport
import Foundation
import LocalStorage
import NIOHTTP1
import Replica
import ServerTestSupport
import StoreSupport
import SyncServer
import SystemTestSupport
import Testing

/// Hostile and broken input: every answer is the documented 4xx with a problem document, the
/// server keeps serving, and stored data does not change.
@Suite("Bad input")
struct BadInputTests {
    struct Case {
        let name: String
        let path: String
        let body: [UInt8]
        var contentType = "application/json"
        let status: Int
        let problem: String
    }

    static func cases(replica: String) -> [Case] {
        let deep = String(repeating: "[", count: 200) + String(repeating: "]", count: 200)
        let validPull = #"{"protocolVersion":1,"cursor":0,"maxChanges":10,"maxBytes":10000}"#
        var cases = [Case]()
        for path in ["/v1/enroll", "/v1/sync/push", "/v1/sync/pull", "/v1/admin/enrolments"] {
            cases += [
                Case(
                    name: "malformed JSON", path: path, body: Array(#"{"code": "#.utf8), status: 400,
                    problem: "malformed-body"),
                Case(name: "not an object", path: path, body: Array("42".utf8), status: 400, problem: "malformed-body"),
                Case(name: "empty body", path: path, body: [], status: 400, problem: "malformed-body"),
                Case(name: "deep nesting", path: path, body: Array(deep.utf8), status: 400, problem: "too-deep"),
                Case(
                    name: "invalid UTF-8", path: path, body: [0x7B, 0x22, 0xFF, 0xFE, 0x22, 0x3A, 0x31, 0x7D],
                    status: 400,
                    problem: "malformed-body"),
                Case(
                    name: "wrong content type", path: path, body: Array("{}".utf8), contentType: "text/plain",
                    status: 415,
                    problem: "unsupported-media-type"),
                Case(
                    name: "oversize body", path: path, body: Array(repeating: 0x20, count: 70_000), status: 413,
                    problem: "too-large"),
            ]
        }
        cases += [
            Case(
                name: "wrong type", path: "/v1/enroll", body: Array(#"{"code":42}"#.utf8), status: 400,
                problem: "malformed-body"),
            Case(
                name: "missing field", path: "/v1/enroll", body: Array("{}".utf8), status: 400,
                problem: "malformed-body"),
            Case(
                name: "extra field", path: "/v1/sync/pull",
                body: Array(
                    #"{"protocolVersion":1,"cursor":0,"maxChanges":10,"maxBytes":10000,"tenant":"globex"}"#.utf8),
                status: 400, problem: "unknown-field"),
            Case(
                name: "duplicated field", path: "/v1/sync/pull",
                body: Array(#"{"protocolVersion":1,"cursor":0,"cursor":5,"maxChanges":10,"maxBytes":10000}"#.utf8),
                status: 400, problem: "malformed-body"),
            Case(
                name: "negative cursor", path: "/v1/sync/pull",
                body: Array(#"{"protocolVersion":1,"cursor":-1,"maxChanges":10,"maxBytes":10000}"#.utf8), status: 400,
                problem: "malformed-body"),
            Case(
                name: "zero limits", path: "/v1/sync/pull",
                body: Array(#"{"protocolVersion":1,"cursor":0,"maxChanges":0,"maxBytes":10000}"#.utf8), status: 400,
                problem: "invalid-limit"),
            Case(
                name: "future protocol", path: "/v1/sync/pull",
                body: Array(
                    validPull.replacingOccurrences(of: #""protocolVersion":1"#, with: #""protocolVersion":9"#).utf8),
                status: 400, problem: "unsupported-protocol-version"),
            Case(
                name: "another replica's batch", path: "/v1/sync/push",
                body: Array(#"{"protocolVersion":1,"replica":"00000000000000ff","changes":[]}"#.utf8), status: 400,
                problem: "wrong-replica"),
            Case(
                name: "bad replica ID", path: "/v1/sync/push",
                body: Array(#"{"protocolVersion":1,"replica":"xyz","changes":[]}"#.utf8), status: 400,
                problem: "malformed-body"),
            Case(
                name: "truncated binary", path: "/v1/sync/push",
                body: Array(
                    PushBatch(replica: ReplicaID(hex: replica)!, epoch: nil, changes: []).encodedBlob().dropLast(3)),
                contentType: "application/vnd.kraliki.sync", status: 400, problem: "malformed-body"),
            Case(
                name: "binary of the wrong message", path: "/v1/sync/push",
                body: PullRequest(epoch: nil, cursor: 0, maxChanges: 1, maxBytes: 1).encodedBlob(),
                contentType: "application/vnd.kraliki.sync", status: 400, problem: "malformed-body"),
            Case(
                name: "bad role", path: "/v1/admin/enrolments", body: Array(#"{"user":"eva","role":"root"}"#.utf8),
                status: 400, problem: "malformed-body"),
            Case(
                name: "bad user name", path: "/v1/admin/enrolments",
                body: Array(#"{"user":"eva; DROP TABLE device","role":"agent"}"#.utf8), status: 400,
                problem: "invalid-name"),
            Case(
                name: "huge user name", path: "/v1/admin/enrolments",
                body: Array(#"{"user":"\#(String(repeating: "e", count: 5_000))","role":"agent"}"#.utf8), status: 400,
                problem: "invalid-name"),
        ]
        return cases
    }

    @Test("every route refuses broken bodies with the documented problem; nothing changes; the server keeps serving")
    func documentedProblems() async throws {
        let server = try await RunningServer.start { $0.limits.maxBodyBytes = 64 * 1024 }
        let raw = try RawClient(server: server)
        let admin = try await raw.enrol(server, user: "boss", role: .admin)
        let before = try Self.snapshot(server)
        var failures = [String]()
        for item in Self.cases(replica: admin.id) {
            let answer = try await raw.send(
                .POST, item.path, token: admin.token, contentType: item.contentType, body: item.body)
            if answer.status != item.status || answer.problemType != item.problem || !answer.isProblem {
                failures.append(
                    "\(item.path) \(item.name): \(answer.status) \(answer.problemType ?? "-") — \(answer.text.prefix(200))"
                )
            }
        }
        // Routes and methods that do not exist.
        let missing = try await raw.send(.GET, "/v1/nothing-here", token: admin.token)
        if missing.status != 404 || missing.problemType != "not-found" {
            failures.append("unknown route: \(missing.status)")
        }
        let wrongMethod = try await raw.send(.DELETE, "/v1/sync/push", token: admin.token)
        if wrongMethod.status != 405 || wrongMethod.problemType != "method-not-allowed" {
            failures.append("wrong method: \(wrongMethod.status) \(wrongMethod.text)")
        }
        // The image route takes no body and no parameters: a body is ignored, another method is 405.
        let imageWithBody = try await raw.send(
            .GET, "/v1/sync/image", token: admin.token, body: Array(repeating: 0xFF, count: 64 * 1024))
        if imageWithBody.status != 404 || imageWithBody.problemType != "no-image" {
            failures.append("image with a body: \(imageWithBody.status) \(imageWithBody.text.prefix(200))")
        }
        let imageByPost = try await raw.send(.POST, "/v1/sync/image", token: admin.token, body: [0x7B])
        if imageByPost.status != 405 || imageByPost.problemType != "method-not-allowed" {
            failures.append("image by POST: \(imageByPost.status)")
        }
        let unknownDevice = try await raw.send(.POST, "/v1/admin/devices/%00%FF/revoke", token: admin.token, body: [])
        if unknownDevice.status != 404 { failures.append("garbage device ID: \(unknownDevice.status)") }
        #expect(failures.isEmpty, "\(failures.joined(separator: "\n"))")
        let after = try Self.snapshot(server)
        #expect(before == after, "bad input changed stored data")
        #expect(try await raw.send(.GET, "/healthz").status == 200)
        await raw.shutdown()
        await server.stop()
    }

    @Test("a push stamped beyond the drift bound is refused per change with a reason; the rest is applied")
    func futureStamps() async throws {
        let server = try await RunningServer.start()
        let directory = TempDirectory("replicas")
        let replica = try await server.enrolReplica(in: directory.sub("skewed"), user: "skewed")
        let now = SyncEngine.systemWall()
        try replica.store.write(wall: now) { state, context throws(ValidationError) in
            try state.createContact(ContactDraft(name: "On time"), context)
        }
        try replica.store.write(wall: now + 365 * 86_400_000) { state, context throws(ValidationError) in
            try state.createContact(ContactDraft(name: "From next year"), context)
        }
        let report = try await replica.sync()
        #expect(report.rejectedChanges == 1)
        let rejected = try replica.store.rejectedChanges()
        #expect(rejected.count == 1)
        #expect(rejected.first?.reason.contains("future") == true || rejected.first?.code.contains("drift") == true)
        #expect(try server.store.state(of: "acme").contacts.count == 1)
        await replica.close()
        await server.stop()
    }

    @Test("seeded mutations of valid requests never get a 5xx or change data they should not")
    func mutations() async throws {
        let seed = FuzzSettings.replaySeed ?? 0x5EED_BAD1
        print("bad-input mutations: seed \(seed) (replay with KRALIKI_SEED=\(seed))")
        var mutator = RequestMutator(seed: seed)
        let server = try await RunningServer.start { $0.limits.maxBodyBytes = 256 * 1024 }
        let raw = try RawClient(server: server)
        let device = try await raw.enrol(server, user: "fuzz", role: .admin)
        let valid = [
            CapturedRequest(
                "/v1/sync/pull", "application/json",
                Array(#"{"protocolVersion":1,"cursor":0,"maxChanges":10,"maxBytes":10000}"#.utf8)),
            CapturedRequest(
                "/v1/sync/push", "application/json",
                Array(#"{"protocolVersion":1,"replica":"\#(device.id)","changes":[]}"#.utf8)),
            CapturedRequest(
                "/v1/admin/enrolments", "application/json", Array(#"{"user":"newbie","role":"agent"}"#.utf8)),
            CapturedRequest("/v1/enroll", "application/json", Array(#"{"code":"AAAA-BBBB"}"#.utf8)),
            CapturedRequest(
                "/v1/sync/pull", "application/vnd.kraliki.sync",
                PullRequest(epoch: nil, cursor: 0, maxChanges: 5, maxBytes: 5000).encodedBlob()),
        ]
        let count = FuzzSettings.isLong ? 10_000 : 300
        var statuses = [Int: Int]()
        var failures = [String]()
        for index in 0..<count {
            let request = mutator.random.pick(valid)
            let (body, mutation) = mutator.mutate(request)
            let answer = try await raw.send(
                .POST, request.path, token: device.token, contentType: request.contentType, body: body)
            statuses[answer.status, default: 0] += 1
            if answer.status >= 500 || (answer.status >= 400 && !answer.isProblem) {
                failures.append(
                    "#\(index) \(request.path) \(mutation.rawValue): \(answer.status) for \(body.map { String(format: "%02x", $0) }.joined())"
                )
            }
        }
        print("bad-input mutations: \(count) requests, statuses \(statuses.sorted { $0.key < $1.key })")
        #expect(failures.isEmpty, "\(failures.prefix(5).joined(separator: "\n"))")
        // Only enrolment codes may have been created (by mutated admin requests); no entity data.
        #expect(try server.store.state(of: "acme").isBottom)
        #expect(try await raw.send(.GET, "/healthz").status == 200)
        await raw.shutdown()
        await server.stop()
    }

    struct Snapshot: Equatable {
        let sequence: UInt64
        let state: Data
        let devices: [DeviceRecord]
        let users: [String]
    }

    static func snapshot(_ server: RunningServer) throws -> Snapshot {
        Snapshot(
            sequence: try server.store.sequence(of: "acme"),
            state: Data(try server.store.state(of: "acme").encodedBlob()),
            devices: try server.store.devices(tenant: "acme").map {
                // Activity columns move with every request; identity and revocation must not.
                DeviceRecord(
                    id: $0.id, tenant: $0.tenant, user: $0.user, role: $0.role, createdMs: $0.createdMs,
                    revokedMs: $0.revokedMs, lastSeenMs: nil, lastPushMs: nil, lastPullMs: nil, cursor: 0)
            }, users: try server.store.users(tenant: "acme").map { "\($0.name):\($0.role)" })
    }
}
