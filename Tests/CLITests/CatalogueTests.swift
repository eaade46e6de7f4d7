import CLITestSupport
import Domain
import DomainTestSupport
import Foundation
import LocalStorage
import Replica
import ReplicaPresentation
import StoreSupport
import SystemTestSupport
import Testing

@Suite("replica-cli messages, exit codes and parsing")
struct CatalogueTests {
    @Test func catalogsHaveTheSameKeysAndPlaceholders() throws {
        let english = Catalogue.messages(.en)
        let czech = Catalogue.messages(.cs)
        #expect(english.count > 50)
        #expect(Set(english.keys).subtracting(czech.keys).sorted() == [])
        #expect(Set(czech.keys).subtracting(english.keys).sorted() == [])
        // `{name}`, or a count `{name|form|…}`: the same names in both languages.
        let placeholder = /\{([a-z]+)[}|]/
        for (key, text) in english {
            let en = Set(text.matches(of: placeholder).map { String($0.output.1) })
            let cs = Set((czech[key] ?? "").matches(of: placeholder).map { String($0.output.1) })
            #expect(en == cs, "placeholders of \(key) differ: \(en) vs \(cs)")
        }
        // Every count has the language's number of forms, each with the number in it.
        let count = /\{[a-z]+((?:\|[^|{}]*)+)\}/
        for (language, forms) in [(Language.en, 2), (.cs, 3)] {
            for (key, text) in Catalogue.messages(language) {
                for match in text.matches(of: count) {
                    let given = match.output.1.split(separator: "|", omittingEmptySubsequences: false).dropFirst()
                    #expect(given.count == forms, "\(language) \(key): \(match.output.0)")
                    #expect(given.allSatisfy { $0.contains("#") }, "\(language) \(key): \(match.output.0)")
                }
            }
        }
    }

    /// "pushed 1 changes" and "odesláno 1 změn" were what a sync of one change printed until
    /// once; Czech has three forms of a counted noun (1; 2–4; 0 and 5 and more).
    @Test func countsTakeTheirLanguagesForms() {
        let english = Catalogue(.en)
        let czech = Catalogue(.cs)
        func synced(_ catalogue: Catalogue, _ pushed: Int) -> String {
            catalogue.text("sync.done", ["pushed": String(pushed), "pulled": "7", "conflicts": "0"])
        }
        #expect(synced(english, 1) == "Synced: pushed 1 change, pulled 7. Open conflicts: 0.")
        #expect(synced(english, 0) == "Synced: pushed 0 changes, pulled 7. Open conflicts: 0.")
        #expect(synced(english, 2) == "Synced: pushed 2 changes, pulled 7. Open conflicts: 0.")
        for (pushed, words) in [
            (1, "odeslána 1 změna"), (2, "odeslány 2 změny"), (4, "odeslány 4 změny"), (5, "odesláno 5 změn"),
            (0, "odesláno 0 změn"), (22, "odesláno 22 změn"),
        ] {
            #expect(synced(czech, pushed) == "Synchronizováno: \(words), přijato 7. Otevřené konflikty: 0.")
        }
        #expect(
            english.text("export.written", ["count": "1", "file": "a{b|c}.vcf"]) == "Wrote 1 record to a{b|c}.vcf.",
            "an argument's braces are text")
        #expect(czech.text("sync.image", ["count": "3"]).hasPrefix("3 záznamy přišly ze serveru"))
        // A count that is not a number, or missing, stays as written: a message never crashes.
        #expect(english.text("export.written", ["count": "many", "file": "x"]).hasPrefix("Wrote {count|"))
    }

    @Test func languageFollowsLANG() {
        #expect(Language.fromEnvironment(["LANG": "cs_CZ.UTF-8"]) == .cs)
        #expect(Language.fromEnvironment(["LANG": "en_GB.UTF-8"]) == .en)
        #expect(Language.fromEnvironment(["LC_ALL": "cs_CZ.UTF-8", "LANG": "en_US"]) == .cs)
        #expect(Language.fromEnvironment([:]) == .en)
    }

    @Test func exitCodesAndMessages() async throws {
        let directory = TempDirectory("cli-exit")
        let cli = try offlineReplica(directory)
        let invalid = try await cli.run(["contact", "add", "--name", "Jana", "--phone", "12"])
        #expect(invalid.status == 1 && invalid.stderr.contains("Invalid phone"), "\(invalid)")
        let json = try await cli.run(["contact", "add", "--name", "Jana", "--email", "nope", "--json"])
        let error = json.object["error"] as? [String: Any]
        #expect(
            json.status == 1 && error?["code"] as? String == "invalid-email" && error?["field"] as? String == "email")
        var czech = cli
        czech.environment["LANG"] = "cs_CZ.UTF-8"
        let cs = try await czech.run(["contact", "add", "--name", " "])
        #expect(cs.status == 1 && cs.stderr.contains("Neplatná hodnota name"), "\(cs)")
        let unknown = try await cli.run(["contact", "show", "0123456789abcdef0123456789abcdef"])
        #expect(unknown.status == 1 && unknown.stderr.contains("There is no contact"), "\(unknown)")
        let usage = try await cli.run(["contact", "add"])
        #expect(usage.status == 1 && usage.stderr.contains("--name"), "\(usage)")
        let badTime = try await cli.run([
            "schedule", "add", "--title", "x", "--start", "tomorrow", "--end", "2026-03-02T10:00Z",
        ])
        #expect(badTime.status == 1 && badTime.stderr.contains("start"), "\(badTime)")
        let backwards = try await cli.run([
            "schedule", "add", "--title", "x", "--start", "2026-03-02T10:00Z", "--end", "2026-03-02T09:00Z",
        ])
        #expect(backwards.status == 1 && backwards.stderr.contains("end"), "\(backwards)")
        #expect((try await cli.json(["contact", "list"])["contacts"] as? [Any])?.isEmpty == true)
        let notEnrolled = try await cli.run(["sync"])
        #expect(notEnrolled.status == 1 && notEnrolled.stderr.contains("not enrolled"), "\(notEnrolled)")

        // Global options before the subcommand work too.
        let hoisted = try await CLI.run(["--json", "--data", cli.data, "status"], environment: ["LANG": "C"])
        #expect(hoisted.status == 0 && hoisted.object["user"] as? String == "jana", "\(hoisted)")

        // A damaged store: exit 3, file left alone.
        let damaged = TempDirectory("cli-damaged")
        try FileManager.default.createDirectory(atPath: damaged.sub("r"), withIntermediateDirectories: true)
        try Data(repeating: 0x42, count: 8192).write(to: URL(fileURLWithPath: damaged.sub("r/replica.sqlite")))
        let broken = try await CLI(data: damaged.sub("r")).run(["contact", "list"])
        #expect(broken.status == 3, "\(broken)")
        let missing = try await CLI(data: damaged.sub("none")).run(["contact", "list"])
        #expect(missing.status == 1 && missing.stderr.contains("replica-cli init"), "\(missing)")
    }

    @Test func localWorkflowAndHistory() async throws {
        let directory = TempDirectory("cli-local")
        let cli = try offlineReplica(directory)
        let id = try await cli.create(["contact", "add", "--name", "Jana", "--tag", "a"])
        try await cli.ok(["contact", "edit", String(id.prefix(8)), "--name", "Jana N.", "--remove-tag", "a"])
        let note = try await cli.create(["note", "add", id, "--text", "hello", "--duration", "60"])
        try await cli.ok(["note", "edit", note, "--text", "hello again"])
        let notes = try await cli.json(["note", "list", id])["notes"] as? [[String: Any]]
        #expect(notes?.first?["text"] as? String == "hello again")
        try await cli.ok(["note", "delete", note])
        #expect((try await cli.json(["note", "list", id])["notes"] as? [Any])?.isEmpty == true)
        try await cli.ok(["contact", "delete", id])
        #expect((try await cli.json(["contact", "list"])["contacts"] as? [Any])?.isEmpty == true)
        try await cli.ok(["contact", "restore", id])
        let history = try await cli.json(["history", id])
        let changes = try #require(history["changes"] as? [[String: Any]])
        #expect(changes.count == 4, "\(history)")
        #expect(changes.allSatisfy { $0["user"] as? String == "jana" && $0["action"] as? String == "write" })
        let fields = try #require(history["fields"] as? [[String: Any]])
        #expect(fields.contains { $0["field"] as? String == "name" && $0["value"] as? String == "Jana N." })
        let human = try await cli.ok(["history", id])
        #expect(human.stdout.contains("local change"), "\(human)")
        // `contact show` labels its lines alike (once the first five were the list's
        // upper-case column headers: "NAME", "OWNER", beside "Title", "Tags").
        let shown = try await cli.ok(["contact", "show", id])
        let labels = shown.stdout.split(separator: "\n").compactMap { $0.split(separator: " ").first }
        #expect(Array(labels.prefix(5)) == ["ID", "Name", "Owner", "Status", "State"], "\(shown)")

        let entry = try await cli.create([
            "schedule", "add", "--title", "Morning", "--start", "2026-03-02T09:00", "--end", "2026-03-02T10:00",
        ])
        // Local input without an offset is Prague time (the test's TZ); output shows local time.
        let listed = try await cli.ok(["schedule", "list", "--day", "2026-03-02"])
        #expect(listed.stdout.contains("2026-03-02 09:00") && listed.stdout.contains("Morning"), "\(listed)")
        let json = try await cli.json(["schedule", "list", "--week", "2026-03-04"])["schedule"] as? [[String: Any]]
        #expect(json?.first?["start"] as? String == "2026-03-02T08:00:00.000Z")
        #expect(
            (try await cli.json(["schedule", "list", "--day", "2026-03-03"])["schedule"] as? [Any])?.isEmpty == true)
        try await cli.ok([
            "schedule", "move", entry, "--start", "2026-03-03T09:00:00+01:00", "--end", "2026-03-03T11:00:00+01:00",
        ])
        try await cli.ok(["schedule", "done", entry])
        let moved = try await cli.json(["schedule", "list", "--day", "2026-03-03"])["schedule"] as? [[String: Any]]
        #expect(
            moved?.first?["status"] as? String == "done"
                && moved?.first?["end"] as? String == "2026-03-03T10:00:00.000Z")
    }

    @Test func csvReaderFollowsRFC4180() {
        let (records, malformed) = CSVReader.parse("a,b\r\n\"x,1\",\"say \"\"hi\"\"\"\n\n\"open\n")
        #expect(records.map(\.line) == [1, 2])
        #expect(records.map(\.fields) == [["a", "b"], ["x,1", "say \"hi\""]])
        #expect(malformed.map(\.line) == [4])
    }

    @Test func isoTimesParse() throws {
        #expect(try TimeText.parse("2026-03-02T09:30:00+01:00", field: "start") == 1_772_440_200_000)
        #expect(try TimeText.parse("2026-03-02T08:30Z", field: "start") == 1_772_440_200_000)
        #expect(try TimeText.parse("2026-03-02T08:30:00.250Z", field: "start") == 1_772_440_200_250)
        #expect(throws: (any Error).self) { try TimeText.parse("2026-02-30T08:30Z", field: "start") }
        #expect(TimeText.utc(1_772_440_200_000) == "2026-03-02T08:30:00.000Z")
    }
}
