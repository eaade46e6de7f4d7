import CRDT
import Domain
import DomainTestSupport
import Foundation
import LocalStorage
import Replica
import ServerTestSupport
import StoreSupport
import SyncServer
import SystemTestSupport
import Testing

/// Backups, restores, configuration, production mode and metrics.
@Suite("Server operations")
struct OperationsTests {
    static func addContacts(_ store: LocalStore, _ prefix: String, _ count: Int) throws {
        for index in 0..<count {
            try store.write(wall: SyncEngine.systemWall()) { state, context throws(ValidationError) in
                try state.createContact(ContactDraft(name: "\(prefix) \(index)"), context)
            }
        }
    }

    @Test(
        "a backup taken while pushes are in flight is consistent; restoring it starts a new epoch and replicas re-push")
    func backupRestore() async throws {
        let directory = TempDirectory("ops")
        var server = try await RunningServer.start(directory: directory)
        let replicas = try await [
            server.enrolReplica(in: directory.sub("a"), user: "a"),
            server.enrolReplica(in: directory.sub("b"), user: "b"),
        ]
        try Self.addContacts(replicas[0].store, "early", 20)
        _ = try await replicas[0].sync()
        let epochBefore = try server.store.epoch(of: "acme")
        // Pushes keep arriving while the backup runs.
        let backupFile = directory.sub("backup.sqlite")
        let serving = server
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (index, replica) in replicas.enumerated() {
                group.addTask {
                    for round in 0..<8 {
                        try Self.addContacts(replica.store, "r\(index)-\(round)", 10)
                        _ = try await replica.sync()
                    }
                }
            }
            group.addTask {
                try await Task.sleep(for: .milliseconds(50))
                _ = try serving.store.backup(to: backupFile, wall: ServerRuntime.systemWall())
            }
            try await group.waitForAll()
        }
        for replica in replicas { _ = try await replica.sync() }
        let everything = try server.store.state(of: "acme")
        #expect(everything.contacts.count == 20 + 2 * 8 * 10)
        #expect(try server.store.lastBackup() != nil)
        await server.stop()

        // Restore the older backup: integrity ok, a new epoch, and the log replays to the state.
        let data = directory.sub("data")
        let epochs = try ServerDatabase.restore(from: backupFile, into: data, wall: ServerRuntime.systemWall())
        #expect(epochs["acme"] != nil && epochs["acme"] != epochBefore)
        let port = server.port  // the replicas know the server by its URL
        server = try await RunningServer.start(directory: directory) { $0.port = port }
        #expect(try server.store.integrityCheck() == ["ok"])
        let restored = try server.store.state(of: "acme")
        var replayed = TenantState()
        var cursor: UInt64 = 0
        while true {
            let page = try server.store.respond(
                to: PullRequest(epoch: epochs["acme"], cursor: cursor, maxChanges: 1_000, maxBytes: 1 << 24),
                tenant: "acme", wall: ServerRuntime.systemWall())
            for change in page.changes { replayed.merge(change.change) }
            cursor = page.nextCursor
            if !page.hasMore { break }
        }
        let consistent = replayed == restored
        #expect(consistent, "the backup's log does not replay to its state")
        #expect(restored.contacts.count < everything.contacts.count, "the backup should predate the last pushes")

        // Replicas see the new epoch, re-push what the restore lacks, and all end identical.
        let reopened = try [
            EnrolledReplica(directory: directory.sub("a")), EnrolledReplica(directory: directory.sub("b")),
        ]
        for replica in reopened {
            let report = try await replica.sync()
            #expect(report.epochChanged)
        }
        for replica in reopened { _ = try await replica.sync() }
        let final = try server.store.state(of: "acme")
        #expect(final.contacts.count == everything.contacts.count)
        let same = reopened.allSatisfy { $0.store.state == final }
        #expect(same, "replicas differ from the restored server after re-push")
        // The first replica to sync sent back the other's lost writes too: allowed (they predate
        // the restore), and on the record.
        let sentBack = try server.store.auditLog(tenant: "acme").filter { $0.action == "push-others-writes" }
        #expect(sentBack.count >= 1 && sentBack.allSatisfy { $0.actor == reopened[0].store.identity.replica.hex })
        for replica in replicas + reopened { await replica.close() }
        await server.stop()
    }

    @Test("config sources: flags win over the environment, which wins over the file; typos are refused")
    func configPrecedence() throws {
        let directory = TempDirectory("config")
        let file = directory.sub("server.json")
        try Data(#"{"port": 9000, "host": "127.0.0.1", "logLevel": "debug", "dataDirectory": "/tmp/x"}"#.utf8)
            .write(to: URL(fileURLWithPath: file))
        let config = try ServerConfig.resolve(
            file: file, environment: ["KRALIKI_PORT": "9100", "KRALIKI_LOG_LEVEL": "error"]
        ) {
            $0.port = 9200
        }
        #expect(config.port == 9200)
        #expect(config.logLevel == "error")
        #expect(config.dataDirectory == "/tmp/x")
        try Data(#"{"prot": 9000}"#.utf8).write(to: URL(fileURLWithPath: file))
        #expect(throws: ServerConfig.Problem.self) { _ = try ServerConfig.resolve(file: file, environment: [:]) }
        #expect(throws: ServerConfig.Problem.self) {
            _ = try ServerConfig.resolve(file: nil, environment: ["KRALIKI_H2C": "true", "KRALIKI_HOST": "0.0.0.0"])
        }
        #expect(throws: ServerConfig.Problem.self) {
            _ = try ServerConfig.resolve(file: nil, environment: ["KRALIKI_PORT": "eighty"])
        }
    }

    @Test("production mode refuses the generated certificate, missing or placeholder secrets, readable keys")
    func production() throws {
        let directory = TempDirectory("production")
        var config = ServerConfig()
        config.dataDirectory = directory.sub("data")
        config.production = true
        config.port = 0
        do {
            _ = try ServerLauncher(config: config)
            Issue.record("production started with development settings")
        } catch let refusal as ProductionRefusal {
            let settings = Set(refusal.problems.map(\.setting))
            #expect(settings == ["tlsCertificate", "secretsFile"], "\(refusal)")
        }
        // Real-looking certificate files, but the key readable by everyone, and placeholder secrets.
        let certificate = directory.sub("cert.pem")
        let key = directory.sub("key.pem")
        try ServerCertificate.generate(host: "sync.example.cz", certificatePath: certificate, keyPath: key, now: Date())
        chmod(key, 0o644)
        try ServerSecrets(metricsToken: "change-me").write(to: directory.sub("data/secrets.json"))
        config.tlsCertificate = certificate
        config.tlsKey = key
        do {
            _ = try ServerLauncher(config: config)
            Issue.record("production started with a readable key and placeholder secrets")
        } catch let refusal as ProductionRefusal {
            let text = refusal.description
            #expect(text.contains("tlsKey") && text.contains("chmod 600"))
            #expect(text.contains("metricsToken is a placeholder"))
        }
    }

    @Test("/metrics exports every metric the alert rules use, in Prometheus text format")
    func metrics() async throws {
        let server = try await RunningServer.start()
        let directory = TempDirectory("metrics")
        let replica = try await server.enrolReplica(in: directory.sub("m"), user: "m")
        try Self.addContacts(replica.store, "metric", 3)
        _ = try await replica.sync()
        _ = try server.store.backup(to: directory.sub("b.sqlite"), wall: ServerRuntime.systemWall())
        let raw = try RawClient(server: server)
        // The store gauges as of now (the server computes them every metricsRefreshSeconds).
        try await server.runtime.refreshStoreGauges()
        let answer = try await raw.send(.GET, "/metrics", token: server.metricsToken)
        #expect(answer.status == 200)
        let text = answer.text
        for name in [
            "kraliki_http_requests_total", "kraliki_http_request_duration_seconds_bucket",
            "kraliki_changes_ingested_total",
            "kraliki_push_batches_total", "kraliki_pull_batches_total", "kraliki_live_streams_open",
            "kraliki_conflicts_open", "kraliki_replica_lag_changes", "kraliki_last_backup_timestamp_seconds",
            "kraliki_ingest_errors_total", "kraliki_store_bytes", "kraliki_devices", "kraliki_group_commits_total",
            "kraliki_changes_rejected_total",
        ] {
            #expect(text.contains("\n\(name)") || text.hasPrefix(name), "\(name) is not exported")
        }
        #expect(text.contains(#"kraliki_changes_ingested_total 3"#))
        // Every kraliki_ metric the alert rules use is exported.
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let rules = try String(contentsOf: root.appendingPathComponent("deploy/prometheus/alerts.yml"), encoding: .utf8)
        let used = Set(
            rules.split(whereSeparator: { !($0.isLetter || $0.isNumber || $0 == "_") }).map(String.init)
                .filter { $0.hasPrefix("kraliki_") && $0.count > "kraliki_".count })
        #expect(!used.isEmpty)
        for name in used.sorted() {
            #expect(text.contains("\n\(name)"), "the alert rules use \(name), which /metrics does not export")
        }
        #expect(!text.contains("kraliki_last_backup_timestamp_seconds 0.0"))
        // Every line is a comment, or `name{labels} value`.
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            #expect(line.split(separator: " ").count == 2, "bad exposition line: \(line)")
        }
        await raw.shutdown()
        await replica.close()
        await server.stop()
    }
}
