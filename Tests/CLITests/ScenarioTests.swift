import CLITestSupport
import DomainTestSupport
import DrillSupport
import Foundation
import LocalStorage
import Replica
import ServerTestSupport
import StoreSupport
import SystemTestSupport
import Testing

/// The day in the life of issue #6, with the real binary against a real server on loopback.
@Suite("replica-cli scenarios", .serialized)
struct ScenarioTests {
    /// What every replica must show identically.
    static func views(_ cli: CLI, contact: String) async throws -> [String] {
        var result = [String]()
        for command in [
            ["contact", "list"], ["schedule", "list"], ["conflicts", "list"], ["note", "list", contact],
            ["export", "json"],
        ] {
            result.append(try await cli.ok(command + ["--json"]).stdout)
        }
        return result
    }

    @Test func dayInTheLife() async throws {
        let serverDirectory = TempDirectory("cli-server")
        let server = ServerProcess(data: serverDirectory.sub("data"))
        try await server.start()
        let home = TempDirectory("cli-replicas")
        let admin = CLI(data: home.sub("anna"))
        let petr = CLI(data: home.sub("petr"))
        let eva = CLI(data: home.sub("eva"))
        try await admin.ok(["init", try await server.enrolment(user: "anna", role: "admin")])
        try await petr.ok(["init", try await server.enrolment(user: "petr", role: "field")])
        try await eva.ok(["init", try await server.enrolment(user: "eva", role: "field")])

        // The admin sets up a contact; everyone syncs it.
        let jana = try await admin.create([
            "contact", "add", "--name", "Jana Nováková", "--phone", "601 234 567", "--company", "Acme",
        ])
        for replica in [admin, petr, eva] { try await replica.ok(["sync"]) }

        // Both field replicas go offline: the server stops.
        server.stop()
        let started = Date()
        let offline = try await petr.run(["sync"])
        #expect(offline.status == 2, "\(offline)")
        #expect(offline.stderr.contains("unreachable") && offline.stderr.contains("Local work is safe"))
        // The reason in plain words, not the network stack's nested error.
        #expect(offline.stderr.contains(": connection refused)"), "\(offline)")
        #expect(!offline.stderr.contains("SingleConnectionFailure"), "\(offline)")
        #expect(Date().timeIntervalSince(started) < 15, "an unreachable server should be reported quickly")

        // Offline work on both: the same field edited, the same assignee double-booked.
        try await petr.ok(["contact", "edit", jana, "--company", "Acme s.r.o.", "--add-tag", "vip"])
        try await eva.ok(["contact", "edit", jana, "--company", "ACME a.s.", "--title", "CFO"])
        try await petr.create(["note", "add", jana, "--text", "Wants a visit", "--outcome", "reached"])
        try await eva.create([
            "note", "add", jana, "--text", "Called back", "--direction", "in", "--at", "2026-03-02T08:15:00+01:00",
        ])
        let karel = try await petr.create(["contact", "add", "--name", "Karel Dvořák", "--email", "karel@example.cz"])
        try await eva.create(["contact", "add", "--name", "Lucie Malá", "--tag", "lead-fair"])
        try await petr.create([
            "schedule", "add", "--title", "Visit Jana", "--start", "2026-03-02T09:00:00+01:00", "--end",
            "2026-03-02T10:00:00+01:00", "--assignee", "petr", "--contact", jana, "--kind", "appointment",
        ])
        try await eva.create([
            "schedule", "add", "--title", "Fair shift", "--start", "2026-03-02T09:30:00+01:00", "--end",
            "2026-03-02T12:00:00+01:00", "--assignee", "petr", "--kind", "shift",
        ])
        try await petr.ok(["contact", "edit", karel, "--status", "active"])
        let pending = try await petr.json(["status"])
        #expect((pending["pendingChanges"] as? Int ?? 0) >= 4)

        // The server comes back on the same port; everyone syncs until quiet.
        try await server.start()
        for replica in [petr, eva, admin, petr] { try await replica.ok(["sync"]) }

        let expected = try await Self.views(admin, contact: jana)
        #expect(try await Self.views(petr, contact: jana) == expected)
        #expect(try await Self.views(eva, contact: jana) == expected)

        let conflicts = try #require(try await admin.json(["conflicts", "list"])["conflicts"] as? [[String: Any]])
        let kinds = Set(conflicts.compactMap { $0["kind"] as? String })
        #expect(kinds.contains("concurrent-values"), "\(conflicts)")
        #expect(kinds.contains("double-booking"), "\(conflicts)")
        // The server's view of the tenant's conflicts is the same list.
        let fromServer = try await admin.ok(["admin", "conflicts", "--json"]).stdout
        #expect(fromServer == expected[2])
        // A field replica may not ask the server for it.
        let refused = try await petr.run(["admin", "conflicts"])
        #expect(refused.status == 1 && refused.stderr.contains("Not permitted"), "\(refused)")

        // The admin resolves each conflict.
        let show = try await admin.ok(["conflicts", "show", conflicts[0]["id"] as! String])
        #expect(show.stdout.contains("Side 1") && show.stdout.contains("Side 2"), "\(show)")
        for conflict in conflicts {
            let id = conflict["id"] as! String
            switch conflict["kind"] as! String {
            case "concurrent-values": try await admin.ok(["conflicts", "resolve", id, "--pick", "1"])
            case "double-booking":
                try await admin.ok([
                    "conflicts", "resolve", id, "--move-to", "2026-03-02T13:00:00+01:00", "2026-03-02T15:00:00+01:00",
                ])
            case "probable-duplicate": try await admin.ok(["conflicts", "resolve", id, "--not-duplicate"])
            default: try await admin.ok(["conflicts", "resolve", id, "--accept"])
            }
        }
        let afterResolving = try await admin.json(["conflicts", "list"])["conflicts"] as? [Any]
        #expect(afterResolving?.isEmpty == true, "\(String(describing: afterResolving))")

        // Another round: no conflicts anywhere, identical data.
        for replica in [admin, petr, eva] { try await replica.ok(["sync"]) }
        let settled = try await Self.views(admin, contact: jana)
        for replica in [admin, petr, eva] {
            let listed = try await replica.json(["conflicts", "list"])["conflicts"] as? [Any]
            #expect(listed?.isEmpty == true, "\(replica.data): \(String(describing: listed))")
        }
        #expect(try await Self.views(petr, contact: jana) == settled)
        #expect(try await Self.views(eva, contact: jana) == settled)
        let shown = try await eva.json(["contact", "show", jana])
        let contact = try #require(shown["contact"] as? [String: Any])
        #expect(contact["title"] as? String == "CFO")
        #expect((contact["tags"] as? [String]) == ["vip"])
        #expect((shown["notes"] as? [Any])?.count == 2)
        server.stop()
    }

    /// A new laptop's first sync takes the server's bootstrap image (written by the server's
    /// own background service), says so, and shows exactly what a replica that pulled shows.
    @Test func firstSyncTakesBootstrapImage() async throws {
        let serverDirectory = TempDirectory("cli-server")
        let data = serverDirectory.sub("data")
        let server = ServerProcess(
            data: data, environment: ["KRALIKI_IMAGE_MIN_CHANGES": "1", "KRALIKI_IMAGE_INTERVAL_SECONDS": "1"])
        try await server.start()
        let home = TempDirectory("cli-replicas")
        let anna = CLI(data: home.sub("anna"))
        try await anna.ok(["init", try await server.enrolment(user: "anna", role: "admin")])
        let csv = home.sub("contacts.csv")
        try
            ("name,phone,email\n"
            + (0..<150).map { "Kontakt \($0),+42060\(1_000_000 + $0),k\($0)@example.cz\n" }
            .joined()).write(toFile: csv, atomically: true, encoding: .utf8)
        try await anna.ok(["import", "csv", csv])
        try await anna.ok(["sync"])
        // The service writes an image within a second or two of the push.
        let deadline = Date().addingTimeInterval(30)
        func imageReady() -> Bool {
            let folders = (try? FileManager.default.contentsOfDirectory(atPath: data + "/images")) ?? []
            return folders.contains { folder in
                ((try? FileManager.default.contentsOfDirectory(atPath: data + "/images/" + folder)) ?? [])
                    .contains { $0.hasPrefix("image-") && $0.hasSuffix(".sqlite") && !$0.hasSuffix("-0.sqlite") }
            }
        }
        while !imageReady() && Date() < deadline { try await Task.sleep(for: .milliseconds(100)) }
        #expect(imageReady(), "the server wrote no bootstrap image")
        try await Task.sleep(for: .milliseconds(300))  // renamed into place just before it is offered

        let petr = CLI(data: home.sub("petr"))
        try await petr.ok(["init", try await server.enrolment(user: "petr", role: "field")])
        let first = try await petr.json(["sync"])
        #expect(first["fromImage"] as? Int == 150, "\(first)")
        let eva = CLI(data: home.sub("eva"))
        try await eva.ok(["init", try await server.enrolment(user: "eva", role: "field")])
        let said = try await eva.ok(["sync"])
        #expect(said.stdout.contains("150 records came in one file from the server"), "\(said)")
        for command in [["contact", "list", "--json"], ["export", "json"]] {
            let expected = try await anna.ok(command).stdout
            #expect(try await petr.ok(command).stdout == expected, "\(command)")
            #expect(try await eva.ok(command).stdout == expected, "\(command)")
        }
        // Petr's replica is his: what he writes is pushed and reaches Anna.
        try await petr.create(["contact", "add", "--name", "Petrův kontakt"])
        try await petr.ok(["sync"])
        try await anna.ok(["sync"])
        #expect(try await anna.ok(["contact", "list", "--search", "Petrův"]).stdout.contains("Petrův kontakt"))
        server.stop()
    }

    /// Enrolling while the server is down is a plain error, not a crash (once the
    /// certificate fetch left a NIO promise unfulfilled, which a debug build traps on).
    @Test func enrolAgainstStoppedServer() async throws {
        let serverDirectory = TempDirectory("cli-server")
        let server = ServerProcess(data: serverDirectory.sub("data"))
        try await server.start()
        let link = try await server.enrolment(user: "petr", role: "field")
        server.stop()
        let home = TempDirectory("cli-replicas")
        let petr = CLI(data: home.sub("petr"))
        let output = try await petr.run(["init", link])
        #expect(output.status == 2, "\(output)")
        #expect(output.stderr.contains("unreachable"), "\(output)")
        // There is no replica yet: no "local work is safe", and the reason in plain words.
        #expect(output.stderr.contains("Nothing was changed"), "\(output)")
        #expect(!output.stderr.contains("Local work"), "\(output)")
        #expect(output.stderr.contains(": connection refused)"), "\(output)")
        #expect(!FileManager.default.fileExists(atPath: home.sub("petr") + "/device.json"))
    }

    @Test func revokedDeviceKeepsLocalData() async throws {
        let server = try await RunningServer.start()
        let home = TempDirectory("cli-revoke")
        let admin = CLI(data: home.sub("admin"))
        let agent = CLI(data: home.sub("agent"))
        try await admin.ok(["init", try server.link(user: "anna", role: .admin).description])
        let enrolled = try await agent.json(["init", try server.link(user: "olga", role: .agent).description])
        let device = try #require(enrolled["replica"] as? String)
        try await agent.ok(["sync"])
        try await agent.create(["contact", "add", "--name", "Written before revocation"])

        let denied = try await agent.run(["admin", "revoke", device])
        #expect(denied.status == 1 && denied.stderr.contains("Not permitted"), "\(denied)")
        try await admin.ok(["admin", "revoke", device])
        let devices = try #require(try await admin.json(["admin", "devices"])["devices"] as? [[String: Any]])
        #expect(devices.contains { ($0["device"] as? [String: Any])?["revokedMs"] is Int })

        let failed = try await agent.run(["sync"])
        #expect(failed.status == 2, "\(failed)")
        #expect(failed.stderr.contains("This device was revoked by an admin"), "\(failed)")
        #expect(failed.stderr.contains("Local data is kept"))
        let failedJSON = try await agent.run(["sync", "--json"])
        #expect((failedJSON.object["error"] as? [String: Any])?["code"] as? String == "revoked-device")
        let czech = try await agent.run(["sync", "--lang", "cs"])
        #expect(czech.status == 2 && czech.stderr.contains("zablokoval"), "\(czech)")

        let contacts = try await agent.json(["contact", "list"])["contacts"] as? [[String: Any]]
        #expect(contacts?.map { $0["name"] as? String } == ["Written before revocation"])
        #expect(try await agent.json(["status"])["pendingChanges"] as? Int == 1)
        await server.stop()
    }
}
