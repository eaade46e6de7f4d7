import CLITestSupport
import DomainTestSupport
import Foundation
import LocalStorage
import Replica
import StoreSupport
import SystemTestSupport
import Testing

/// CSV import and vCard / iCalendar / JSON export through the real binary.
@Suite("replica-cli import and export")
struct TransferTests {
    static let csv =
        "\u{FEFF}Name,Phone,E-mail,Company,Tags,Customer no\r\n"
        + "Jana Nováková,601 234 567,jana@example.cz,\"Acme, s.r.o.\",vip;prague,C-1\r\n"
        + "Bad Phone,12,bad@example.cz,,,\r\n"  // line 3: phone too short
        + ",602 000 111,,,,\r\n"  // line 4: no name
        + "Petr Svoboda,+421 905 123 456,petr@example.sk,\"Multi\nline\",,C-2\r\n"  // lines 5-6
        + "Too,Many,Fields,Here,x,y,z\r\n"  // line 7
        + "Eva Malá,,eva@@example.cz,,,\r\n"  // line 8: bad e-mail
        + "Karel Dvořák,,karel@example.cz,,,C-3\r\n"  // line 9

    @Test func csvImportReportsBadLinesAndDryRunChangesNothing() async throws {
        let directory = TempDirectory("cli-import")
        let cli = try offlineReplica(directory)
        let file = directory.sub("contacts.csv")
        try Self.csv.write(toFile: file, atomically: true, encoding: .utf8)
        let mapping = ["--map", "e-mail=email", "--map", "Customer no=field.customer-no"]

        let dry = try await cli.json(["import", "csv", file, "--dry-run"] + mapping)
        #expect(dry["dryRun"] as? Bool == true)
        #expect(dry["imported"] as? Int == 3)
        let dryLines = (dry["rejected"] as? [[String: Any]])?.compactMap { $0["line"] as? Int }
        #expect(dryLines == [3, 4, 7, 8], "\(dry)")
        #expect((try await cli.json(["contact", "list"])["contacts"] as? [Any])?.isEmpty == true)
        #expect(try await cli.json(["status"])["pendingChanges"] as? Int == 0)

        let human = try await cli.ok(["import", "csv", file] + mapping)
        #expect(human.stdout.contains("line 3: phone"), "\(human)")
        #expect(human.stdout.contains("line 4: name"), "\(human)")
        #expect(human.stdout.contains("line 7: has 7 fields"), "\(human)")
        #expect(human.stdout.contains("line 8: email"), "\(human)")
        #expect(human.stdout.contains("3 contacts imported, 4 lines rejected."), "\(human)")
        let contacts = try #require(try await cli.json(["contact", "list"])["contacts"] as? [[String: Any]])
        #expect(contacts.map { $0["name"] as? String } == ["Jana Nováková", "Karel Dvořák", "Petr Svoboda"])
        let jana = contacts[0]
        #expect(jana["company"] as? String == "Acme, s.r.o.")
        #expect(jana["phones"] as? [String] == ["+420601234567"])
        #expect(jana["tags"] as? [String] == ["prague", "vip"])
        #expect((jana["fields"] as? [String: String])?["customer-no"] == "C-1")
        #expect(contacts[2]["company"] as? String == "Multi\nline")

        let badMap = try await cli.run(["import", "csv", file, "--map", "Phone=fax"])
        #expect(badMap.status == 1 && badMap.stderr.contains("fax"), "\(badMap)")
        let missing = try await cli.run(["import", "csv", directory.sub("nope.csv")])
        #expect(missing.status == 1, "\(missing)")
    }

    @Test func exportsParseWithIndependentParsers() async throws {
        let directory = TempDirectory("cli-export")
        let cli = try offlineReplica(directory)
        let jana = try await cli.create([
            "contact", "add", "--name", "Jana Nováková; \"the boss\", with a very long name that needs folding ÁÉÍÓÚ",
            "--phone", "601 234 567", "--email", "jana@example.cz", "--company", "Acme, s.r.o.", "--tag", "vip",
            "--field", "customer-no=42", "--address", "Na Příkopě 1\nPraha",
        ])
        try await cli.create(["contact", "add", "--name", "Petr Svoboda", "--phone", "+421 905 123 456"])
        try await cli.create([
            "schedule", "add", "--title", "Call back, Jana", "--start", "2026-03-02T09:00:00+01:00", "--end",
            "2026-03-02T09:30:00+01:00", "--kind", "callback", "--contact", jana, "--location", "Office; room 2",
        ])
        let cancelled = try await cli.create([
            "schedule", "add", "--title", "Shift", "--start", "2026-03-03T08:00:00Z", "--end", "2026-03-03T16:00:00Z",
            "--kind", "shift", "--assignee", "jana", "--assignee", "petr",
        ])
        try await cli.ok(["schedule", "cancel", cancelled])
        let vcf = directory.sub("contacts.vcf")
        let ics = directory.sub("schedule.ics")
        #expect(try await cli.json(["export", "vcard", "--out", vcf])["count"] as? Int == 2)
        #expect(try await cli.json(["export", "ics", "--out", ics])["count"] as? Int == 2)
        let everything = try await cli.ok(["export", "json"]).object
        #expect((everything["contacts"] as? [Any])?.count == 2)
        #expect((everything["schedule"] as? [Any])?.count == 2)

        let script = """
            import sys, vobject, icalendar, datetime
            cards = list(vobject.readComponents(open(sys.argv[1], encoding='utf-8').read()))
            for card in cards:
                print('FN', card.fn.value)
                print('TEL', [t.value for t in card.contents.get('tel', [])])
                print('ORG', [o.value for o in card.contents.get('org', [])])
            cal = icalendar.Calendar.from_ical(open(sys.argv[2], 'rb').read())
            for event in cal.walk('VEVENT'):
                print('EVENT', str(event['SUMMARY']), event['DTSTART'].dt.isoformat(), event['DTEND'].dt.isoformat(), str(event['STATUS']), str(event.get('LOCATION', '')))
            """
        let output = try await Self.python(script, [vcf, ics])
        #expect(output.status == 0, "python: \(output)")
        let text = output.stdout
        #expect(
            text.contains("FN Jana Nováková; \"the boss\", with a very long name that needs folding ÁÉÍÓÚ"), "\(text)")
        #expect(text.contains("FN Petr Svoboda"), "\(text)")
        #expect(text.contains("tel:+420601234567"), "\(text)")
        #expect(text.contains("Acme, s.r.o."), "\(text)")
        #expect(
            text.contains(
                "EVENT Call back, Jana 2026-03-02T08:00:00+00:00 2026-03-02T08:30:00+00:00 CONFIRMED Office; room 2"),
            "\(text)")
        #expect(text.contains("EVENT Shift 2026-03-03T08:00:00+00:00 2026-03-03T16:00:00+00:00 CANCELLED"), "\(text)")
    }

    static func python(_ script: String, _ arguments: [String]) async throws -> CLI.Output {
        try await ChildProcess.run("/usr/bin/env", ["python3", "-c", script] + arguments)
    }
}
