import AsyncHTTPClient
import CRDT
import CRDTTestSupport
import Domain
import DomainTestSupport
import Foundation
import LocalStorage
import NIOCore
import NIOHTTP1
import Replica
import ServerTestSupport
import StoreSupport
import SyncServer
import SystemTestSupport
import Testing

/// Issue #28: what a stranger who can reach the port, and a valid device acting in bad faith,
/// could do to the server before — each test fails on the behaviour it names.
@Suite("Hardening")
struct HardeningTests {
    // MARK: Unauthenticated growth

    @Test("/metrics keeps a fixed set of series whatever methods and paths strangers send")
    func metricsLabelsAreBounded() async throws {
        let server = try await RunningServer.start()
        let raw = try RawClient(server: server)
        func series() async throws -> Set<String> {
            let text = try await raw.send(.GET, "/metrics", token: server.metricsToken).text
            // A series is its name and labels; values (and the le buckets' counts) change.
            return Set(
                text.split(separator: "\n").filter { !$0.hasPrefix("#") }.map { String($0.split(separator: " ")[0]) })
        }
        func strangers(_ round: Int) async throws {
            for index in 0..<100 {
                _ = try await raw.send(.RAW(value: "X\(round)M\(index)"), "/healthz")
                _ = try await raw.send(.GET, "/no/such/route/\(round)/\(index)")
            }
        }
        _ = try await series()  // the scrape's own series exist from here on
        try await strangers(0)
        let after100 = try await series()
        try await strangers(1)
        let after200 = try await series()
        #expect(after100 == after200, "series added by strangers: \(after200.subtracting(after100).sorted())")
        #expect(!after200.contains { $0.contains("X0M") || $0.contains("/no/such") })
        #expect(after200.contains { $0.contains(#"method="other""#) })
        await raw.shutdown()
        await server.stop()
    }

    @Test("/metrics needs the metrics token by default; a device token or a near guess is refused")
    func metricsNeedTheToken() async throws {
        let server = try await RunningServer.start()
        let raw = try RawClient(server: server)
        let device = try await raw.enrol(server, user: "jana", role: .admin)
        #expect(try await raw.send(.GET, "/metrics").status == 401)
        #expect(try await raw.send(.GET, "/metrics", token: device.token).status == 401)
        var guess = Array(server.metricsToken)
        guess[guess.count - 1] = guess.last == "a" ? "b" : "a"
        #expect(try await raw.send(.GET, "/metrics", token: String(guess)).status == 401)
        #expect(try await raw.send(.GET, "/metrics", token: server.metricsToken).status == 200)
        // The development server wrote the token where the operator finds it, readable by its owner only.
        let secrets = server.directory.sub("data/secrets.json")
        let mode = try FileManager.default.attributesOfItem(atPath: secrets)[.posixPermissions] as? Int
        #expect(mode.map { $0 & 0o077 } == 0)
        await raw.shutdown()
        await server.stop()
    }

    @Test("/readyz answers from the background probe with a body that names nothing")
    func readyzIsCheap() async throws {
        let server = try await RunningServer.start()
        let raw = try RawClient(server: server)
        let answer = try await raw.send(.GET, "/readyz")
        #expect(answer.status == 200)
        #expect(answer.text == #"{"status":"ready"}"#)
        await raw.shutdown()
        await server.stop()
    }

    // MARK: Forged CRDT state

    /// Jana's first outbox change as JSON: one new contact, stamped by her replica.
    static func honestPush(_ replica: EnrolledReplica, name: String = "Honest Contact") throws -> String {
        try replica.store.write(wall: ServerRuntime.systemWall()) { state, context throws(ValidationError) in
            try state.createContact(ContactDraft(name: name), context)
        }
        let pending = try replica.store.pendingChanges()
        let batch = PushBatch(
            replica: try #require(ReplicaID(hex: replica.credentials.deviceId)), epoch: nil, changes: pending)
        return String(decoding: try JSONEncoder().encode(batch), as: UTF8.self)
    }

    /// `json` with `entries` more entries in its first causal context.
    static func injectingContext(_ json: String, _ entries: [(ReplicaID, UInt64)]) throws -> String {
        let range = try #require(json.range(of: #""context":{"#))
        let text = entries.map { #""\#($0.0.hex)":\#($0.1)"# }.joined(separator: ",")
        return json.replacingCharacters(in: range, with: #""context":{"# + text + ",")
    }

    @Test("a context naming 20,000 replicas the tenant never enrolled is refused, JSON and binary; nothing is stored")
    func forgedContextIsRefused() async throws {
        let server = try await RunningServer.start()
        let raw = try RawClient(server: server)
        let jana = try await server.enrolReplica(in: server.directory.sub("jana"), user: "jana")
        let json = try Self.honestPush(jana)
        let counter = HLC(physical: ServerRuntime.systemWall(), replica: ReplicaID(1)).time
        var random = SeededRandom(seed: 28)
        let forged = try Self.injectingContext(
            json, (0..<20_000).map { _ in (ReplicaID(random.next() | 1 << 63), counter) })
        let binary = try JSONDecoder().decode(PushBatch.self, from: Data(forged.utf8)).encodedBlob()
        for (type, body) in [("application/json", Array(forged.utf8)), (MessageFormat.binaryContentType, binary)] {
            let answer = try await raw.send(
                .POST, "/v1/sync/push", token: jana.credentials.token, contentType: type, body: body,
                headers: [("accept", type)])
            #expect(answer.status == 200, "\(answer.text.prefix(300))")
            let ack =
                type == "application/json"
                ? try JSONDecoder().decode(PushAck.self, from: answer.body) : try PushAck(blob: Array(answer.body))
            #expect(ack.rejected.map(\.code) == ["unknown-replica"], "\(ack.rejected)")
        }
        #expect(try server.store.sequence(of: "acme") == 0)
        #expect(try server.store.state(of: "acme").contacts.count == 0)
        await raw.shutdown()
        await jana.close()
        await server.stop()
    }

    @Test("a context naming another enrolled replica of the tenant is accepted")
    func enrolledContextIsAccepted() async throws {
        let server = try await RunningServer.start()
        let raw = try RawClient(server: server)
        let jana = try await server.enrolReplica(in: server.directory.sub("jana"), user: "jana")
        let petr = try await raw.enrol(server, user: "petr", role: .agent)
        let counter = HLC(physical: ServerRuntime.systemWall(), replica: ReplicaID(1)).time
        let forged = try Self.injectingContext(try Self.honestPush(jana), [(ReplicaID(hex: petr.id)!, counter)])
        let answer = try await raw.send(.POST, "/v1/sync/push", token: jana.credentials.token, json: forged)
        #expect(answer.status == 200)
        let ack = try JSONDecoder().decode(PushAck.self, from: answer.body)
        #expect(ack.rejected.isEmpty, "\(ack.rejected)")
        #expect(try server.store.state(of: "acme").contacts.count == 1)
        await raw.shutdown()
        await jana.close()
        await server.stop()
    }

    @Test("a JSON key spelled with escapes is the key it decodes to: a second cursor is a duplicate")
    func escapedDuplicateKey() async throws {
        let server = try await RunningServer.start()
        let raw = try RawClient(server: server)
        let device = try await raw.enrol(server, user: "jana", role: .agent)
        let answer = try await raw.send(
            .POST, "/v1/sync/pull", token: device.token,
            json: #"{"protocolVersion":1,"cursor":0,"curs\u006fr":5,"maxChanges":10,"maxBytes":10000}"#)
        #expect(answer.status == 400)
        #expect(answer.problemType == "malformed-body")
        #expect(answer.text.contains("cursor appears twice"), "\(answer.text)")
        await raw.shutdown()
        await server.stop()
    }

    // MARK: Resource caps

    @Test("one device holds at most maxLiveStreamsPerDevice live streams; a closed one frees its slot")
    func liveStreamsAreCapped() async throws {
        let server = try await RunningServer.start { $0.limits.maxLiveStreamsPerDevice = 3 }
        let raw = try RawClient(server: server)
        let device = try await raw.enrol(server, user: "jana", role: .agent)
        func openStreams() async throws -> Int {
            let text = try await raw.send(.GET, "/metrics", token: server.metricsToken).text
            let line = text.split(separator: "\n").first { $0.hasPrefix("kraliki_live_streams_open ") }
            return line.flatMap { Double($0.split(separator: " ")[1]) }.map(Int.init) ?? -1
        }
        let streams = (0..<3).map { _ in
            Task { try await raw.stream(.GET, "/v1/sync/live", token: device.token) }
        }
        var waited = 0
        while try await openStreams() < 3, waited < 200 {
            try await Task.sleep(for: .milliseconds(50))
            waited += 1
        }
        #expect(try await openStreams() == 3)
        let refused = try await raw.head(.GET, "/v1/sync/live", token: device.token)
        #expect(refused.status == 429)
        #expect(refused.problemType == "too-many-streams")
        #expect(refused.headers.first(name: "retry-after") != nil)
        // Another device of the tenant is not affected.
        let other = try await raw.enrol(server, user: "petr", role: .agent)
        let answer = try await raw.head(.GET, "/v1/sync/live", token: other.token)
        #expect(answer.status == 200)
        for stream in streams { stream.cancel() }
        for stream in streams { _ = try? await stream.value }
        waited = 0
        while try await openStreams() > 0, waited < 200 {
            try await Task.sleep(for: .milliseconds(50))
            waited += 1
        }
        #expect(try await raw.head(.GET, "/v1/sync/live", token: device.token).status == 200)
        await raw.shutdown()
        await server.stop()
    }

    @Test("bodies in flight beyond maxBodyBytesInFlight are answered 503 with Retry-After")
    func bodyBudget() async throws {
        let server = try await RunningServer.start {
            $0.limits.maxBodyBytes = 65_536
            $0.limits.maxBodyBytesInFlight = 65_536
        }
        let raw = try RawClient(server: server)
        let device = try await raw.enrol(server, user: "jana", role: .agent)
        // A push that announces 65,500 bytes and sends one: it holds its reservation, and a
        // pull's few dozen bytes no longer fit.
        let (gate, open) = AsyncStream.makeStream(of: Void.self)
        let slow = Task {
            try await raw.slowBody(
                .POST, "/v1/sync/push", token: device.token, length: 65_500, first: Array("{".utf8), gate: gate)
        }
        func inFlight() async throws -> Double {
            let text = try await raw.send(.GET, "/metrics", token: server.metricsToken).text
            let line = text.split(separator: "\n").first { $0.hasPrefix("kraliki_request_body_bytes_in_flight ") }
            return line.flatMap { Double($0.split(separator: " ")[1]) } ?? -1
        }
        var tries = 0
        while try await inFlight() < 65_500, tries < 250 {
            try await Task.sleep(for: .milliseconds(20))
            tries += 1
        }
        let answer = try await raw.send(
            .POST, "/v1/sync/pull", token: device.token,
            json: #"{"protocolVersion":1,"cursor":0,"maxChanges":10,"maxBytes":10000}"#)
        #expect(answer.status == 503)
        #expect(answer.problemType == "busy")
        #expect(answer.headers.first(name: "retry-after") == "1")
        open.finish()
        // Its body is blank JSON: refused as malformed once read, not as busy.
        #expect(try await slow.value.status == 400)
        let after = try await raw.send(
            .POST, "/v1/sync/pull", token: device.token,
            json: #"{"protocolVersion":1,"cursor":0,"maxChanges":10,"maxBytes":10000}"#)
        #expect(after.status == 200)
        await raw.shutdown()
        await server.stop()
    }

    @Test("a stranger's body is small: POST /v1/enroll takes 16 KiB at most, so it cannot hold the body budget")
    func openRoutesTakeSmallBodies() async throws {
        let server = try await RunningServer.start()
        let raw = try RawClient(server: server)
        let padded = #"{"code":"not-a-code"}"# + String(repeating: " ", count: 20_000)
        let answer = try await raw.send(.POST, "/v1/enroll", json: padded)
        #expect(answer.status == 413)
        #expect(answer.problemType == "too-large")
        let small = try await raw.send(.POST, "/v1/enroll", json: #"{"code":"not-a-code"}"#)
        #expect(small.status == 400)
        await raw.shutdown()
        await server.stop()
    }

    @Test("one client address is limited on enrolment before the server-wide budget")
    func enrolmentPerAddress() async throws {
        let server = try await RunningServer.start {
            $0.limits.enrolmentBurst = 1_000
            $0.limits.enrolmentBurstPerAddress = 3
            $0.limits.enrolmentsPerSecondPerAddress = 0.01
        }
        let raw = try RawClient(server: server)
        var statuses = [Int]()
        for _ in 0..<4 {
            statuses.append(try await raw.send(.POST, "/v1/enroll", json: #"{"code":"not-a-code"}"#).status)
        }
        #expect(statuses == [400, 400, 400, 429])
        await raw.shutdown()
        await server.stop()
    }

    // MARK: Authentication

    @Test("issuing a code changes nobody's role; the code's own role is given when it is used")
    func roleTravelsOnTheCode() async throws {
        let server = try await RunningServer.start()
        let raw = try RawClient(server: server)
        let admin = try await raw.enrol(server, user: "boss", role: .admin)
        let agent = try await raw.enrol(server, user: "ana", role: .agent)
        // An admin code for ana, not yet used: ana's device is still an agent's.
        let issued = try await raw.send(
            .POST, "/v1/admin/enrolments", token: admin.token, json: #"{"user":"ana","role":"admin"}"#)
        #expect(issued.status == 201)
        #expect(try await raw.send(.GET, "/v1/admin/devices", token: agent.token).status == 403)
        // A later code for another role does not change what the first one gives.
        _ = try server.code(user: "ana", role: .field)
        let code = try #require(issued.json?["code"] as? String)
        let used = try await raw.send(.POST, "/v1/enroll", json: #"{"code":"\#(code)"}"#)
        #expect(used.status == 201)
        #expect(used.json?["role"] as? String == "admin")
        #expect(try await raw.send(.GET, "/v1/admin/devices", token: agent.token).status == 200)
        await raw.shutdown()
        await server.stop()
    }

    @Test("an admin lists the tenant's unused codes and withdraws one; it then enrols nothing")
    func listAndRevokeCodes() async throws {
        let server = try await RunningServer.start()
        let raw = try RawClient(server: server)
        let admin = try await raw.enrol(server, user: "boss", role: .admin)
        let issued = try await raw.send(
            .POST, "/v1/admin/enrolments", token: admin.token, json: #"{"user":"ana","role":"supervisor"}"#)
        let code = try #require(issued.json?["code"] as? String)
        _ = try server.code(tenant: "globex", user: "other")  // another tenant's: never listed
        let listed = try await raw.send(.GET, "/v1/admin/enrolments", token: admin.token)
        #expect(listed.status == 200)
        let codes = try #require(listed.json?["codes"] as? [[String: Any]])
        #expect(codes.count == 1)
        #expect(codes.first?["user"] as? String == "ana" && codes.first?["role"] as? String == "supervisor")
        #expect(!listed.text.contains(code) && !listed.text.contains("other"))
        let id = try #require(codes.first?["id"] as? String)
        let revoked = try await raw.send(.POST, "/v1/admin/enrolments/\(id)/revoke", token: admin.token)
        #expect(revoked.status == 200)
        let again = try await raw.send(.POST, "/v1/admin/enrolments/\(id)/revoke", token: admin.token)
        #expect(again.status == 404)
        let used = try await raw.send(.POST, "/v1/enroll", json: #"{"code":"\#(code)"}"#)
        #expect(used.status == 400)
        #expect(used.problemType == "invalid-code")
        let empty = try await raw.send(.GET, "/v1/admin/enrolments", token: admin.token)
        #expect((empty.json?["codes"] as? [Any])?.isEmpty == true)
        await raw.shutdown()
        await server.stop()
    }

    @Test("a device revoked by another process is refused at its very next request")
    func revokeHasNoWindow() async throws {
        let server = try await RunningServer.start()
        let raw = try RawClient(server: server)
        let device = try await raw.enrol(server, user: "jana", role: .agent)
        #expect(try await raw.send(.GET, "/v1/device", token: device.token).status == 200)  // now cached
        // The store directly, as `sync-server` in another process would: this server is not told.
        _ = try server.store.revoke(device: device.id, tenant: "acme", actor: "cli", wall: ServerRuntime.systemWall())
        let answer = try await raw.send(.GET, "/v1/device", token: device.token)
        #expect(answer.status == 401)
        #expect(answer.problemType == "device-revoked")
        await raw.shutdown()
        await server.stop()
    }

    // MARK: TLS

    /// A root CA, an intermediate it signs and a leaf for 127.0.0.1 the intermediate signs, made
    /// with openssl in `directory`: `root.pem`, `fullchain.pem` (leaf, then intermediate),
    /// `leaf.key`, `leaf.der`.
    static func makeChain(in directory: String) async throws {
        func openssl(_ arguments: [String]) async throws {
            let result = try await ChildProcess.run("/usr/bin/openssl", arguments)
            guard result.status == 0 else { throw CertificateFailure("openssl \(arguments): \(result.stderr)") }
        }
        func path(_ name: String) -> String { directory + "/" + name }
        try "basicConstraints=critical,CA:true\nkeyUsage=critical,keyCertSign,cRLSign\n".write(
            toFile: path("ca.ext"), atomically: true, encoding: .utf8)
        try "basicConstraints=critical,CA:false\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1\n".write(
            toFile: path("leaf.ext"), atomically: true, encoding: .utf8)
        for name in ["root", "intermediate", "leaf"] {
            try await openssl(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", path("\(name).key")])
        }
        try await openssl([
            "req", "-x509", "-new", "-key", path("root.key"), "-subj", "/CN=Test Root", "-days", "2",
            "-addext", "basicConstraints=critical,CA:true", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            "-out", path("root.pem"),
        ])
        for (name, issuer, subject, ext) in [
            ("intermediate", "root", "/CN=Test Intermediate", "ca.ext"),
            ("leaf", "intermediate", "/CN=127.0.0.1", "leaf.ext"),
        ] {
            try await openssl([
                "req", "-new", "-key", path("\(name).key"), "-subj", subject, "-out", path("\(name).csr"),
            ])
            try await openssl([
                "x509", "-req", "-in", path("\(name).csr"), "-CA", path("\(issuer).pem"), "-CAkey",
                path("\(issuer).key"),
                "-CAcreateserial", "-days", "1", "-extfile", path(ext), "-out", path("\(name).pem"),
            ])
        }
        try await openssl(["x509", "-in", path("leaf.pem"), "-outform", "DER", "-out", path("leaf.der")])
        let chain =
            try String(contentsOfFile: path("leaf.pem"), encoding: .utf8)
            + String(contentsOfFile: path("intermediate.pem"), encoding: .utf8)
        try chain.write(toFile: path("fullchain.pem"), atomically: true, encoding: .utf8)
        chmod(path("leaf.key"), 0o600)
    }

    struct CertificateFailure: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    @Test("a fullchain.pem (CA-signed leaf + intermediate) loads, is served whole, and the leaf is pinned")
    func fullChain() async throws {
        let directory = TempDirectory("chain")
        try FileManager.default.createDirectory(atPath: directory.sub("pki"), withIntermediateDirectories: true)
        try await Self.makeChain(in: directory.sub("pki"))
        let server = try await RunningServer.start(directory: directory) {
            $0.tlsCertificate = directory.sub("pki/fullchain.pem")
            $0.tlsKey = directory.sub("pki/leaf.key")
        }
        let leaf = try Data(contentsOf: URL(fileURLWithPath: directory.sub("pki/leaf.der")))
        #expect(server.fingerprint == ServerCertificate.fingerprint(der: Array(leaf)))
        // A client that trusts only the root can verify the leaf only if the server sends the
        // intermediate with it.
        let answer = try await ChildProcess.run(
            "/usr/bin/curl",
            ["--silent", "--show-error", "--http2", "--cacert", directory.sub("pki/root.pem"), server.url + "/healthz"])
        #expect(answer.status == 0, "\(answer.stderr)")
        #expect(answer.stdout.contains("ok"))
        await server.stop()
    }

    @Test("a replica whose pinned certificate is missing refuses to connect, saying how to re-pin")
    func pinningFailsClosed() async throws {
        let server = try await RunningServer.start()
        let directory = server.directory.sub("jana")
        let jana = try await server.enrolReplica(in: directory, user: "jana")
        #expect(jana.credentials.trust == .pinned)
        await jana.close()
        unlink(directory + "/" + DeviceCredentials.certificateFileName)
        do {
            let client = try HTTPSyncClient.enrolled(in: directory)
            try? await client.shutdown()
            Issue.record("a replica without its pinned certificate connected (to the system's trust store)")
        } catch let failure as SyncFailure {
            #expect(failure.code == .untrustedServer)
            #expect(failure.message.contains("re-pin"))
        }
        await server.stop()
    }

    // MARK: Files

    @Test("backups, restored stores and a new data directory are private to the server's user")
    func privateFiles() async throws {
        func mode(_ path: String) throws -> Int {
            (try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int ?? -1) & 0o777
        }
        let server = try await RunningServer.start()
        #expect(try mode(server.directory.sub("data")) == 0o700)
        #expect(try mode(server.directory.sub("data/server.sqlite")) == 0o600)
        let backup = server.directory.sub("backup.sqlite")
        try server.store.backup(to: backup, wall: ServerRuntime.systemWall())
        #expect(try mode(backup) == 0o600)
        // An existing file is never written into.
        #expect(throws: StoreError.self) { try server.store.backup(to: backup, wall: ServerRuntime.systemWall()) }
        await server.stop()
        let restored = server.directory.sub("restored")
        _ = try ServerDatabase.restore(from: backup, into: restored, wall: ServerRuntime.systemWall())
        #expect(try mode(restored) == 0o700)
        #expect(try mode(restored + "/server.sqlite") == 0o600)
        // Production refuses a data directory others can read.
        chmod(restored, 0o755)
        var config = ServerConfig()
        config.dataDirectory = restored
        let problems = config.productionProblems(certificate: nil, secrets: nil)
        #expect(problems.contains { $0.setting == "dataDirectory" && $0.message.contains("chmod 700") })
    }

    // MARK: Configuration

    @Test("every duration and count is checked at start, naming the setting")
    func configRanges() throws {
        func problem(_ configure: (inout ServerConfig) -> Void) -> String? {
            do {
                _ = try ServerConfig.resolve(file: nil, environment: [:], flags: configure)
                return nil
            } catch { return error.setting }
        }
        #expect(problem { $0.enrolmentCodeHours = -1 } == "enrolmentCodeHours")
        #expect(problem { $0.enrolmentCodeHours = 0 } == "enrolmentCodeHours")
        #expect(problem { $0.driftBoundSeconds = Int.max } == "driftBoundSeconds")
        #expect(problem { $0.metricsRefreshSeconds = 0 } == "metricsRefreshSeconds")
        #expect(problem { $0.limits.maxLiveStreamsPerDevice = 0 } == "limits.maxLiveStreamsPerDevice")
        #expect(problem { $0.limits.maxBodyBytesInFlight = 10 } == "limits.maxBodyBytesInFlight")
        #expect(problem { $0.limits.requestsPerSecond = -5 } == "limits.requestsPerSecond")
        #expect(problem { $0.limits.idleConnectionSeconds = .nan } == "limits.idleConnectionSeconds")
        #expect(problem { _ in } == nil)
    }

    @Test("cleartext is allowed on loopback addresses only, parsed as addresses")
    func loopbackIsParsed() {
        for host in ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost"] {
            #expect(ServerConfig.isLoopback(host), "\(host)")
        }
        for host in ["127.example.com", "127.0.0.1.nip.io", "10.0.0.1", "::2", "0.0.0.0", "", "1270.0.0.1"] {
            #expect(!ServerConfig.isLoopback(host), "\(host)")
        }
    }
}
