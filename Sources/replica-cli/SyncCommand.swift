import ArgumentParser
import Domain
import Foundation
import LocalStorage
import Replica
import ReplicaPresentation
import StoreSupport

struct InitCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init", abstract: "Enrol this replica with the string `sync-server enroll` printed.")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "kraliki://enrol?server=…&code=…&sha256=…") var enrolment: String?
    @Option(help: "The server URL (long form).") var server: String?
    @Option(help: "The one-time code (long form).") var code: String?
    @Option(help: "The server certificate's SHA-256 (long form).") var fingerprint: String?
    @Option(help: "Trust this CA file instead of pinning a fingerprint.") var ca: String?
    @Flag(
        help: """
            Disaster recovery: enrol this EXISTING replica with a new server that lost it (no backup),             keeping its data; its next sync pushes everything it holds.
            """)
    var rejoin = false

    func run() async throws {
        let console = Console(global)
        try await console.run {
            let link: EnrolmentLink
            if let enrolment {
                link = try EnrolmentLink(parsing: enrolment)
            } else if let server, let code, fingerprint != nil || ca != nil {
                if let fingerprint, !EnrolmentLink.isFingerprint(EnrolmentLink.normalizedFingerprint(fingerprint)) {
                    throw CommandFailure.user(
                        "error.enrolment-link", code: "invalid-enrolment", field: "fingerprint",
                        ["detail": "the certificate fingerprint must be 64 hexadecimal digits"])
                }
                link = EnrolmentLink(
                    server: server, code: code, fingerprint: fingerprint.map(EnrolmentLink.normalizedFingerprint))
            } else {
                throw CommandFailure.user("init.need-link", code: "required", field: "enrolment")
            }
            let result: ReplicaEnrolment.Result
            do {
                result =
                    rejoin
                    ? try await ReplicaEnrolment.rejoin(link, caFile: ca, directory: console.directory)
                    : try await ReplicaEnrolment.enrol(link, caFile: ca, directory: console.directory)
            } catch let failure as SyncFailure where failure.code == .unreachable {
                // Not "local work is safe, it is sent at the next sync": there is no replica yet.
                throw CommandFailure(
                    exitCode: 2, code: failure.code.description, key: "init.unreachable", ["detail": failure.message])
            }
            let credentials = result.credentials
            if console.json {
                console.emit([
                    "replica": credentials.deviceId, "user": credentials.user, "role": credentials.role,
                    "tenant": credentials.tenant, "server": credentials.server,
                ])
            } else {
                console.say(
                    "init.done",
                    [
                        "user": credentials.user, "role": credentials.role, "tenant": credentials.tenant,
                        "replica": credentials.deviceId,
                    ])
                // Said, never silent: no fingerprint means any publicly trusted certificate for
                // the name is taken for the server.
                if credentials.trust == .system { console.say("init.system-trust") }
            }
        }
    }
}

struct SyncCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sync", abstract: "Push local changes, then pull until caught up; --watch keeps following.")
    @OptionGroup var global: GlobalOptions
    @Flag(help: "Stay connected and sync whenever anything changes, through network drops, until Ctrl-C.")
    var watch = false

    struct Result: Encodable {
        var event: String?
        let pushed: Int
        let pulled: Int
        let rejected: Int
        let conflicts: Int
        let epochChanged: Bool
        let rebootstrapped: Bool
        /// Records taken from the server's bootstrap image (a fresh replica's first sync).
        let fromImage: Int?
    }

    func run() async throws {
        let console = Console(global)
        try await console.run(duringSync: true) {
            let store = try console.openStore()
            let client = try HTTPSyncClient.enrolled(in: console.directory)
            do {
                if !watch { try await ServerProbe.check(client.server) }
                try await sync(console, store, client)
                try? await client.shutdown()
            } catch {
                try? await client.shutdown()
                throw error
            }
        }
    }

    private func sync(_ console: Console, _ store: LocalStore, _ client: HTTPSyncClient) async throws {
        let progress = ProgressLine(label: console.text("progress.sync"), enabled: console.showsProgress && !watch)
        let transport = CountingTransport(client) { requests, bytes in
            progress.update(requests, unit: "requests", extra: bytesText(bytes))
        }
        let engine = SyncEngine(store: store, transport: transport)
        func result(_ report: SyncReport, event: String?) throws -> Result {
            Result(
                event: event, pushed: report.pushedChanges, pulled: report.pulledChanges,
                rejected: report.rejectedChanges, conflicts: try store.refreshConflicts().count,
                epochChanged: report.epochChanged, rebootstrapped: report.rebootstrapped,
                fromImage: report.imageEntities)
        }
        func show(_ result: Result) {
            console.say(
                "sync.done",
                ["pushed": "\(result.pushed)", "pulled": "\(result.pulled)", "conflicts": "\(result.conflicts)"])
            if result.rejected > 0 { console.say("sync.refused", ["count": "\(result.rejected)"]) }
            if result.epochChanged { console.say("sync.epoch") }
            if result.rebootstrapped { console.say("sync.rebootstrapped") }
            if let count = result.fromImage { console.say("sync.image", ["count": "\(count)"]) }
        }
        guard watch else {
            let report = try await engine.syncRetrying(
                policy: RetryPolicy(initialDelay: .milliseconds(200), maximumDelay: .seconds(2), maximumAttempts: 3))
            progress.finish()
            let outcome = try result(report, event: nil)
            if console.json { console.emit(outcome) } else { show(outcome) }
            return
        }
        // Ctrl-C ends the watch cleanly: every sync step is already durable.
        signal(SIGINT, SIG_IGN)
        let interrupt = DispatchSource.makeSignalSource(signal: SIGINT, queue: .main)
        interrupt.setEventHandler {
            if !console.json { print(console.text("sync.stopped")) }
            Foundation.exit(0)
        }
        interrupt.resume()
        console.say("sync.watching")
        fflush(nil)
        try await engine.follow(
            live: { try await client.liveSequences() },
            onEvent: { event in
                switch event {
                case .synced(let report):
                    guard let outcome = try? result(report, event: "synced") else { return }
                    if console.json { console.emitLine(outcome) } else { show(outcome) }
                case .disconnected(let error, let delay):
                    let failure = CommandFailure.classify(error, duringSync: true)
                    let seconds = String(
                        format: "%.1f", Double(delay.components.seconds) + Double(delay.components.attoseconds) / 1e18)
                    if console.json {
                        console.emitLine([
                            "event": "disconnected", "code": failure.code,
                            "message": failure.message(console.catalogue),
                            "retryInSeconds": seconds,
                        ])
                    } else {
                        console.say(
                            "sync.reconnecting", ["detail": failure.message(console.catalogue), "seconds": seconds])
                    }
                }
                fflush(nil)
            })
    }
}

struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status", abstract: "Who this replica is, its server, sync state, conflicts and size.")
    @OptionGroup var global: GlobalOptions

    struct Status: Encodable {
        let replica: String
        let user: String
        let tenant: String
        let role: String?
        let server: String?
        let lastSync: String?
        let pendingChanges: Int
        let refusedChanges: Int
        /// Each refused change with the server's reason (what the user must act on).
        let refused: [Refused]
        let openConflicts: Int
        let clockOffsetMs: Int64
        let storeBytes: Int
    }

    struct Refused: Encodable {
        let localSequence: UInt64
        let code: String
        let reason: String
    }

    func run() throws {
        let console = Console(global)
        try console.run {
            let store = try console.openStore()
            let credentials = try? console.credentials()
            let refused = try store.rejectedChanges().map {
                Refused(localSequence: $0.localSequence, code: $0.code, reason: $0.reason)
            }
            let lastSync = try store.lastSync()
            let status = Status(
                replica: store.identity.replica.hex, user: store.identity.user, tenant: store.identity.tenant,
                role: credentials?.role, server: store.serverURL ?? credentials?.server,
                lastSync: lastSync.map { TimeText.utc(Int64($0)) }, pendingChanges: try store.outboxCount(),
                refusedChanges: refused.count, refused: refused, openConflicts: try store.refreshConflicts().count,
                clockOffsetMs: store.session.clockOffset, storeBytes: store.sizeOnDisk())
            if console.json {
                console.emit(status)
                return
            }
            let c = console.catalogue
            let rows: [(String, String)] = [
                (c.text("status.replica"), status.replica), (c.text("status.user"), status.user),
                (c.text("status.role"), status.role ?? "-"), (c.text("status.tenant"), status.tenant),
                (c.text("status.server"), status.server ?? "-"),
                (
                    c.text("status.last-sync"),
                    lastSync.map { TimeText.local(Int64($0), seconds: true) } ?? c.text("status.never")
                ),
                (c.text("status.pending"), "\(status.pendingChanges)"),
                (c.text("status.refused"), "\(status.refusedChanges)"),
                (c.text("status.conflicts"), "\(status.openConflicts)"),
                (c.text("status.clock-offset"), "\(status.clockOffsetMs) ms"),
                (c.text("status.store-size"), bytesText(status.storeBytes)),
            ]
            let width = rows.map(\.0.count).max() ?? 0
            for (label, value) in rows {
                print(label.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + value)
            }
            // Why each refused change was refused: the server's reason, in its words.
            for change in refused { print("  #\(change.localSequence) \(change.code): \(change.reason)") }
        }
    }
}
