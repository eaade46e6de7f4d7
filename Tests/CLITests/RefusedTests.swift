import CLITestSupport
import CRDT
import Domain
import DomainTestSupport
import Foundation
import LocalStorage
import Replica
import StoreSupport
import SystemTestSupport
import Testing

/// `replica-cli refused list` and `refused reissue`: plain errors for a bad --from, both
/// languages, JSON. (The run against the real server is RecoveryDrillTests/RefusedReissueDrillTests.)
@Suite("replica-cli refused")
struct RefusedTests {
    /// A replica in `path` whose one change (a contact) the server refused.
    static func refusedReplica(_ path: String, replica: UInt64, tenant: String = "acme") throws {
        let store = try LocalStore.create(
            in: path, identity: ReplicaIdentity(replica: ReplicaID(replica), user: "jana", tenant: tenant))
        try store.write(wall: 1_764_000_000_000) { s, c throws(ValidationError) in
            try s.createContact(ContactDraft(name: "Written offline", phones: ["601 234 567"], tags: ["fair"]), c)
        }
        let rejections = try store.pendingChanges().map {
            Rejection(localSequence: $0.localSequence, code: "clock-drift-exceeded", reason: "a year ahead")
        }
        try store.commit(session: store.session, actions: [.keepRejected(rejections)], wall: 1_764_000_000_000)
    }

    @Test func badSourcesAreRefusedAndChangeNothing() async throws {
        let directory = TempDirectory("cli-refused")
        let cli = try offlineReplica(directory)
        try FileManager.default.createDirectory(atPath: directory.sub("empty"), withIntermediateDirectories: true)
        try Self.refusedReplica(directory.sub("globex"), replica: 0x61, tenant: "globex")
        _ = try LocalStore.create(
            in: directory.sub("clean"),
            identity: ReplicaIdentity(replica: ReplicaID(0x62), user: "jana", tenant: "acme"))
        for (from, code, message) in [
            (directory.sub("empty"), "not-a-replica", "is not a replica directory"),
            (cli.data, "same-replica", "is this replica"),
            (directory.sub("globex"), "other-tenant", "belongs to tenant globex"),
            (directory.sub("clean"), "nothing-refused", "has no refused changes"),
        ] {
            let output = try await cli.run(["refused", "reissue", "--from", from])
            #expect(output.status == 1 && output.stderr.contains(message), "\(code): \(output)")
            let json = try await cli.run(["refused", "reissue", "--from", from, "--json"])
            let error = json.object["error"] as? [String: Any]
            #expect(json.status == 1 && error?["code"] as? String == code && error?["field"] as? String == "from")
        }
        var czech = cli
        czech.environment["LANG"] = "cs_CZ.UTF-8"
        let cs = try await czech.run(["refused", "reissue", "--from", directory.sub("empty")])
        #expect(cs.status == 1 && cs.stderr.contains("není adresář repliky"), "\(cs)")
        let status = try await cli.json(["status"])
        #expect(status["pendingChanges"] as? Int == 0)
        #expect((try await cli.json(["contact", "list"])["contacts"] as? [Any])?.isEmpty == true)
        let none = try await cli.ok(["refused", "list"])
        #expect(none.stdout.contains("has no refused changes"), "\(none)")
    }

    @Test func listThenReissueInBothLanguages() async throws {
        let directory = TempDirectory("cli-refused")
        let cli = try offlineReplica(directory)
        let old = directory.sub("old")
        try Self.refusedReplica(old, replica: 0x01D)
        let list = try await cli.ok(["refused", "list", "--from", old])
        #expect(list.stdout.contains("#1 clock-drift-exceeded: a year ahead"), "\(list)")
        #expect(
            list.stdout.contains(
                ": name = Written offline; owner = jana; status = lead; phones + +420601234567; tags + fair"), "\(list)"
        )
        var czech = cli
        czech.environment["LANG"] = "cs_CZ.UTF-8"
        let csList = try await czech.run(["refused", "list", "--from", old])
        #expect(csList.stdout.contains("vytvořit kontakt"), "\(csList)")
        let dry = try await czech.run(["refused", "reissue", "--from", old, "--dry-run"])
        #expect(dry.status == 0 && dry.stdout.contains("Nic se nezměnilo"), "\(dry)")
        #expect((try await cli.json(["status"]))["pendingChanges"] as? Int == 0)
        let run = try await czech.run(["refused", "reissue", "--from", old])
        #expect(run.status == 0 && run.stdout.contains("vydány znovu jako 1 nových změn"), "\(run)")
        let contacts = try await cli.json(["contact", "list"])["contacts"] as? [[String: Any]] ?? []
        #expect(contacts.count == 1 && contacts.first?["name"] as? String == "Written offline", "\(contacts)")
        let id = try #require(contacts.first?["id"] as? String)
        let history = try await cli.ok(["history", id])
        #expect(history.stdout.contains("refused change re-issued"), "\(history)")
        let rerun = try await cli.json(["refused", "reissue", "--from", old])
        #expect((rerun["reissued"] as? [Any])?.isEmpty == true && rerun["alreadyReissued"] as? [Int] == [1])
        #expect((try await cli.json(["status"]))["pendingChanges"] as? Int == 1)
    }
}
