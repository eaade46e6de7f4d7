import Domain
import Foundation
import LocalStorage
import NIOCore
import Replica
import StoreSupport
import Synchronization

/// A replica in the test process: its real SQLite store in its own directory and the real HTTP/2
/// client (TLS, server certificate pinned), reaching the server at any URL — the server's own
/// or a ``FaultProxy``'s. It counts every request it sends, failed ones included.
///
/// One task uses a replica at a time (the store is not `Sendable`); `@unchecked Sendable` only
/// lets that task be a child task of the drill.
public final class DrillReplica: @unchecked Sendable {
    public let name: String
    public let directory: String
    public private(set) var store: LocalStore
    public let client: HTTPSyncClient
    private let counter: RequestCounter

    /// Enrols a new replica in `directory` with `link` (whose server may be a proxy's URL).
    /// `requestTimeout` bounds a request the network swallowed (a black hole); the default
    /// client's 60 s would outlast a drill.
    public static func enrol(
        _ link: EnrolmentLink, name: String, in directory: String, requestTimeout: Duration = .seconds(8)
    ) async throws -> DrillReplica {
        // Enrolment itself may meet a fault; a drill enrols before it switches faults on.
        _ = try await ReplicaEnrolment.enrol(link, directory: directory)
        return try DrillReplica(name: name, directory: directory, requestTimeout: requestTimeout)
    }

    /// Opens an enrolled replica; `server` overrides the URL in its `device.json`.
    public init(name: String, directory: String, server: String? = nil, requestTimeout: Duration = .seconds(8)) throws {
        self.name = name
        self.directory = directory
        store = try LocalStore.open(in: directory)
        let credentials = try DeviceCredentials.load(from: directory)
        let pem = try String(
            contentsOfFile: (directory as NSString).appendingPathComponent(DeviceCredentials.certificateFileName),
            encoding: .utf8)
        client = try HTTPSyncClient(
            server: server ?? credentials.server, token: credentials.token, trustPEM: pem,
            requestTimeout: .nanoseconds(
                requestTimeout.components.seconds * 1_000_000_000 + requestTimeout.components.attoseconds
                    / 1_000_000_000))
        counter = RequestCounter(base: client)
    }

    /// Requests sent so far (push and pull, answered or not).
    public var requests: Int { counter.sent.load(ordering: .relaxed) }

    /// Pushes and pulls sent and not yet answered (or failed) now: a drill kills the server
    /// while one is above 0 to hit it mid-push or mid-pull.
    public var inFlight: (pushes: Int, pulls: Int) {
        (counter.pushes.load(ordering: .relaxed), counter.pulls.load(ordering: .relaxed))
    }

    /// One `sync()`: push the whole outbox, then pull until caught up. Throws what the network did.
    @discardableResult
    public func sync() async throws -> SyncReport {
        let report = try await SyncEngine(store: store, transport: counter).sync()
        if report.imageEntities != nil { imagesTaken += 1 }
        return report
    }

    /// Bootstrap images this replica took (at most one: only a fresh replica takes one).
    public private(set) var imagesTaken = 0

    /// Syncs until one sync succeeds and leaves the outbox empty, or `deadline` passes.
    public func syncUntilDrained(by deadline: ContinuousClock.Instant) async throws {
        var lastError: (any Error)?
        while ContinuousClock.now < deadline {
            do {
                try await sync()
                if try store.outboxCount() == 0 { return }
            } catch {
                guard RetryPolicy.canHeal(error) else { throw error }
                lastError = error
                try await Task.sleep(for: .milliseconds(100))
            }
        }
        throw DrillFailure("\(name) did not drain its outbox in time; last error: \(String(describing: lastError))")
    }

    /// Reopens the store from its file (what a restarted replica would see).
    public func reopen() throws {
        store = try LocalStore.open(in: directory)
    }

    public func close() async { try? await client.shutdown() }
}

/// Counts requests as they are sent, before the answer (or the failure) comes.
final class RequestCounter: ImageSyncTransport, Sendable {
    let base: HTTPSyncClient
    let sent = Atomic<Int>(0)
    let pushes = Atomic<Int>(0)
    let pulls = Atomic<Int>(0)

    init(base: HTTPSyncClient) { self.base = base }

    nonisolated(nonsending) func push(_ batch: [UInt8]) async throws -> [UInt8] {
        sent.add(1, ordering: .relaxed)
        pushes.add(1, ordering: .relaxed)
        defer { pushes.subtract(1, ordering: .relaxed) }
        return try await base.push(batch)
    }

    nonisolated(nonsending) func pull(_ request: [UInt8]) async throws -> [UInt8] {
        sent.add(1, ordering: .relaxed)
        pulls.add(1, ordering: .relaxed)
        defer { pulls.subtract(1, ordering: .relaxed) }
        return try await base.pull(request)
    }

    /// A fresh replica's first sync asks for the bootstrap image (a 404 when the server has none).
    nonisolated(nonsending) func downloadImage(to path: String) async throws -> ImageDownload {
        sent.add(1, ordering: .relaxed)
        return try await base.downloadImage(to: path)
    }
}

/// A drill's own failure: what went wrong, said plainly (the test prints it with the seed).
public struct DrillFailure: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
