import AsyncHTTPClient
import CRDT
import Domain
import DomainTestSupport
import Foundation
import LocalStorage
import Logging
import NIOCore
import NIOHTTP1
import NIOSSL
import Replica
import ServiceLifecycle
import StoreSupport
import SyncServer
import Synchronization
import SystemTestSupport

/// A real sync server (HTTP/2 over TLS with its generated certificate, real SQLite store) on
/// a free loopback port, in a temporary directory; `stop()` shuts it down gracefully.
public final class RunningServer: @unchecked Sendable {
    public let directory: TempDirectory
    public let launcher: ServerLauncher
    public let runtime: ServerRuntime
    public let port: Int
    private let task: Task<Void, any Error>
    private let group: ServiceGroup

    public var url: String { "https://127.0.0.1:\(port)" }
    public var fingerprint: String { launcher.certificate!.fingerprint }
    public var store: ServerDatabase { launcher.store }
    /// The token `/metrics` takes (from the secrets file a development server writes).
    public var metricsToken: String { launcher.secrets!.metricsToken }
    public var certificatePEM: String {
        try! String(contentsOfFile: launcher.certificate!.certificatePath, encoding: .utf8)
    }

    public static func start(
        directory: TempDirectory = TempDirectory("server"), _ configure: (inout ServerConfig) -> Void = { _ in }
    ) async throws -> RunningServer {
        var config = ServerConfig()
        config.dataDirectory = directory.sub("data")
        config.port = 0
        config.logLevel = "warning"
        configure(&config)
        var logger = Logger(label: "test-server")
        logger.logLevel = .warning
        let launcher = try ServerLauncher(config: config, logger: logger)
        let runtime = launcher.runtime()
        let app = try SyncServerApp(runtime: runtime, certificate: launcher.certificate)
        let (ports, sink) = AsyncStream.makeStream(of: Int.self)
        let application = try app.application(onRunning: { port in sink.yield(port) })
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: [application], gracefulShutdownSignals: [], logger: logger))
        let task = Task { try await group.run() }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next() else { throw CancellationError() }
        return RunningServer(
            directory: directory, launcher: launcher, runtime: runtime, port: port, task: task, group: group)
    }

    private init(
        directory: TempDirectory, launcher: ServerLauncher, runtime: ServerRuntime, port: Int,
        task: Task<Void, any Error>,
        group: ServiceGroup
    ) {
        self.directory = directory
        self.launcher = launcher
        self.runtime = runtime
        self.port = port
        self.task = task
        self.group = group
    }

    /// Graceful shutdown: stop accepting, finish in-flight requests, close live streams.
    public func stop() async {
        await group.triggerGracefulShutdown()
        _ = try? await task.value
        launcher.close()
    }

    /// A one-time code for `user` (created with `role`).
    public func code(
        tenant: String = "acme", user: String, role: Role = .agent, rejoin: ReplicaID? = nil
    ) throws
        -> String
    {
        try store.createEnrolmentCode(
            tenant: tenant, user: user, role: role, wall: ServerRuntime.systemWall(), actor: "test",
            rejoinReplica: rejoin
        )
        .code
    }

    /// The enrolment string for `user` (for `rejoin`, a rejoin of that replica only).
    public func link(
        tenant: String = "acme", user: String, role: Role = .agent, rejoin: ReplicaID? = nil
    ) throws
        -> EnrolmentLink
    {
        EnrolmentLink(
            server: url, code: try code(tenant: tenant, user: user, role: role, rejoin: rejoin),
            fingerprint: fingerprint)
    }

    /// Enrols a new replica in `directory` and opens it with its HTTP client.
    public func enrolReplica(
        in replicaDirectory: String, tenant: String = "acme", user: String, role: Role = .agent
    ) async throws -> EnrolledReplica {
        _ = try await ReplicaEnrolment.enrol(
            try link(tenant: tenant, user: user, role: role), directory: replicaDirectory)
        return try EnrolledReplica(directory: replicaDirectory)
    }
}

/// An enrolled replica: its store, HTTP client and credentials.
public final class EnrolledReplica: @unchecked Sendable {
    public let directory: String
    public let store: LocalStore
    public let client: HTTPSyncClient
    public let credentials: DeviceCredentials

    public init(directory: String) throws {
        self.directory = directory
        store = try LocalStore.open(in: directory)
        client = try HTTPSyncClient.enrolled(in: directory)
        credentials = try DeviceCredentials.load(from: directory)
    }

    public var engine: SyncEngine { SyncEngine(store: store, transport: client) }

    public func sync() async throws -> SyncReport { try await engine.sync() }

    public func close() async { try? await client.shutdown() }
}

/// Raw HTTP/2 requests (any bytes, any headers) for the bad-input and authorization tests.
public final class RawClient: Sendable {
    let client: HTTPClient
    public let base: String

    public struct Answer: Sendable {
        public let status: Int
        public let headers: HTTPHeaders
        public let body: Data
        public var text: String { String(decoding: body, as: UTF8.self) }
        public var json: [String: Any]? { (try? JSONSerialization.jsonObject(with: body)) as? [String: Any] }
        public var problemType: String? { (json?["type"] as? String)?.split(separator: "/").last.map(String.init) }
        public var isProblem: Bool { headers.first(name: "content-type") == "application/problem+json" }
    }

    public init(server: RunningServer) throws {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(Array(server.certificatePEM.utf8)))
        var configuration = HTTPClient.Configuration(tlsConfiguration: tls)
        configuration.httpVersion = .automatic
        client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        base = server.url
    }

    public func send(
        _ method: HTTPMethod, _ path: String, token: String? = nil, contentType: String? = "application/json",
        body: [UInt8]? = nil, headers extra: [(String, String)] = []
    ) async throws -> Answer {
        var request = HTTPClientRequest(url: base + path)
        request.method = method
        if let token { request.headers.add(name: "authorization", value: "Bearer \(token)") }
        if let contentType, body != nil { request.headers.add(name: "content-type", value: contentType) }
        for (name, value) in extra { request.headers.add(name: name, value: value) }
        if let body { request.body = .bytes(ByteBuffer(bytes: body)) }
        let response = try await client.execute(request, timeout: .seconds(30))
        let bytes = try await response.body.collect(upTo: 64 << 20)
        return Answer(status: Int(response.status.code), headers: response.headers, body: Data(bytes.readableBytesView))
    }

    public func send(_ method: HTTPMethod, _ path: String, token: String? = nil, json: String) async throws -> Answer {
        try await send(method, path, token: token, body: Array(json.utf8))
    }

    /// The status and the first body chunk only (for streams that do not end).
    public func head(_ method: HTTPMethod, _ path: String, token: String? = nil) async throws -> Answer {
        var request = HTTPClientRequest(url: base + path)
        request.method = method
        if let token { request.headers.add(name: "authorization", value: "Bearer \(token)") }
        let response = try await client.execute(request, timeout: .seconds(30))
        var first = Data()
        for try await chunk in response.body {
            first = Data(chunk.readableBytesView)
            break
        }
        return Answer(status: Int(response.status.code), headers: response.headers, body: first)
    }

    /// A request whose response is read until the task is cancelled (a live stream held open).
    public func stream(_ method: HTTPMethod, _ path: String, token: String? = nil) async throws {
        var request = HTTPClientRequest(url: base + path)
        request.method = method
        if let token { request.headers.add(name: "authorization", value: "Bearer \(token)") }
        let response = try await client.execute(request, timeout: .seconds(600))
        for try await _ in response.body {}
    }

    /// A request that announces `length` body bytes, sends `first`, and sends the rest (spaces)
    /// only once `gate` finishes: a body the server holds while it waits.
    public func slowBody(
        _ method: HTTPMethod, _ path: String, token: String? = nil, length: Int, first: [UInt8],
        gate: AsyncStream<Void>
    ) async throws -> Answer {
        var request = HTTPClientRequest(url: base + path)
        request.method = method
        if let token { request.headers.add(name: "authorization", value: "Bearer \(token)") }
        request.headers.add(name: "content-type", value: "application/json")
        let (chunks, sink) = AsyncStream.makeStream(of: ByteBuffer.self)
        sink.yield(ByteBuffer(bytes: first))
        let feeder = Task {
            for await _ in gate {}
            sink.yield(ByteBuffer(bytes: Array(repeating: UInt8(ascii: " "), count: length - first.count)))
            sink.finish()
        }
        defer { feeder.cancel() }
        request.body = .stream(chunks, length: .known(Int64(length)))
        let response = try await client.execute(request, timeout: .seconds(60))
        let bytes = try await response.body.collect(upTo: 64 << 20)
        return Answer(status: Int(response.status.code), headers: response.headers, body: Data(bytes.readableBytesView))
    }

    /// A device enrolled over HTTP with a fresh code: its ID and token.
    public func enrol(
        _ server: RunningServer, tenant: String = "acme", user: String, role: Role
    ) async throws -> (
        id: String, token: String
    ) {
        let code = try server.code(tenant: tenant, user: user, role: role)
        let answer = try await send(.POST, "/v1/enroll", json: #"{"code":"\#(code)"}"#)
        guard answer.status == 201, let id = answer.json?["deviceId"] as? String,
            let token = answer.json?["token"] as? String
        else { throw SyncFailure(.rejectedRequest, "enrolment failed: \(answer.status) \(answer.text)") }
        return (id, token)
    }

    public func shutdown() async {
        shutDown.withLock { $0 = true }
        try? await client.shutdown()
    }

    private let shutDown = Mutex(false)

    /// A test that throws before `shutdown()` must fail, not crash the test process.
    deinit { if !shutDown.withLock({ $0 }) { try? client.syncShutdown() } }
}
