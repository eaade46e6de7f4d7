import ArgumentParser
import Domain
import Foundation
import LocalStorage
import Replica
import ReplicaPresentation
import StoreSupport

struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Contacts as vCard 4.0, the schedule as iCalendar, or everything as JSON.")

    enum Format: String, ExpressibleByArgument, CaseIterable {
        case vcard, ics, json
    }

    @OptionGroup var global: GlobalOptions
    @Argument(help: "vcard, ics or json.") var format: Format
    @Option(help: "Write to this file instead of standard output.") var out: String?

    func run() throws {
        let console = Console(global)
        try console.run {
            let store = try console.openStore()
            let everything = store.state.exportView
            let text: String
            let count: Int
            switch format {
            case .vcard:
                let contacts = everything.contacts.filter { $0.lifecycle == "active" }
                (text, count) = (VCardWriter.write(contacts), contacts.count)
            case .ics:
                let entries = everything.schedule.filter { $0.lifecycle == "active" }
                (text, count) = (ICalendarWriter.write(entries), entries.count)
            case .json:
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
                text = String(decoding: try encoder.encode(everything), as: UTF8.self) + "\n"
                count = everything.contacts.count + everything.notes.count + everything.schedule.count
            }
            guard let out else {
                FileHandle.standardOutput.write(Data(text.utf8))
                return
            }
            do {
                try Data(text.utf8).write(to: URL(fileURLWithPath: out), options: .atomic)
            } catch {
                throw CommandFailure.user(
                    "error.file", code: "io", field: "out", ["file": out, "detail": error.localizedDescription])
            }
            if console.json {
                console.emit(ExportResult(file: out, format: format.rawValue, count: count))
            } else {
                console.say("export.written", ["count": "\(count)", "file": out])
            }
        }
    }

    struct ExportResult: Encodable {
        let file: String
        let format: String
        let count: Int
    }
}

struct ImportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import", abstract: "Import contacts.", subcommands: [CSV.self])

    struct CSV: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "csv",
            abstract: "Contacts from CSV (RFC 4180, header row, UTF-8 with or without BOM).",
            discussion: """
                Recognised headers: name, company, title, owner, status, address, phone, email, tag, \
                field.KEY. Several phones, e-mails or tags in one cell are separated by ';'. Bad lines are \
                reported with their number and reason; the rest is imported.
                """)
        @OptionGroup var global: GlobalOptions
        @Argument var file: String
        @Flag(name: .customLong("dry-run"), help: "Check and report; change nothing.") var dryRun = false
        @Option(help: "COLUMN=FIELD: read header COLUMN as FIELD (repeatable; FIELD ignore drops it).")
        var map: [String] = []

        struct Outcome: Encodable {
            let dryRun: Bool
            let imported: Int
            let ids: [String]
            let rejected: [ContactCSVImport.Rejection]
        }

        func run() throws {
            let console = Console(global)
            try console.run {
                let store = try console.openStore()
                var mapping = [String: String]()
                for pair in map {
                    guard let equals = pair.firstIndex(of: "="), equals != pair.startIndex else {
                        throw CommandFailure.user(
                            "error.map", code: "invalid-format", field: "map",
                            ["value": pair, "fields": ContactCSVImport.fieldNames.joined(separator: ", ")])
                    }
                    mapping[String(pair[..<equals])] = String(pair[pair.index(after: equals)...])
                }
                let text: String
                do {
                    text = try String(decoding: Data(contentsOf: URL(fileURLWithPath: file)), as: UTF8.self)
                } catch {
                    throw CommandFailure.user(
                        "error.file", code: "io", field: "file", ["file": file, "detail": error.localizedDescription])
                }
                let plan = try ContactCSVImport(csv: text, map: mapping, settings: store.options.settings)
                var ids = [String]()
                if !dryRun && !plan.rows.isEmpty {
                    let progress = ProgressLine(label: console.text("progress.import"), enabled: console.showsProgress)
                    // Chunks keep each transaction bounded and let the progress line move; every row
                    // was validated above, so a chunk fails only if the disk does.
                    let chunk = 1_000
                    var start = 0
                    while start < plan.rows.count {
                        let rows = plan.rows[start..<min(start + chunk, plan.rows.count)]
                        ids += try store.importContacts(rows.map(\.draft), wall: SyncEngine.systemWall()).map(\.text)
                        start += rows.count
                        progress.update(start, of: plan.rows.count, unit: "contacts", force: true)
                    }
                    progress.finish()
                    _ = try store.refreshConflicts()
                }
                let imported = dryRun ? plan.rows.count : ids.count
                if console.json {
                    console.emit(Outcome(dryRun: dryRun, imported: imported, ids: ids, rejected: plan.rejections))
                    return
                }
                for rejection in plan.rejections {
                    print(
                        console.text("import.rejected-line", ["line": "\(rejection.line)", "detail": rejection.reason]))
                }
                console.say(
                    dryRun ? "import.dry-run" : "import.summary",
                    ["imported": "\(imported)", "rejected": "\(plan.rejections.count)"])
            }
        }
    }
}

struct AdminCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "admin",
        abstract: "Devices, enrolments and the tenant's conflicts (admin or supervisor replicas).",
        subcommands: [Devices.self, Revoke.self, Enroll.self, Conflicts.self])

    /// Runs `body` with an admin client, after checking this replica's role offline.
    static func withAdmin(
        _ console: Console, command: String, need: AdminClient.Need, _ body: (AdminClient) async throws -> Void
    ) async throws {
        let credentials = try console.credentials()
        guard AdminClient.permits(need, role: credentials.role) else {
            throw CommandFailure.user(
                "admin.not-permitted", code: "not-permitted", field: nil,
                ["command": command, "needed": need == .admin ? "admin" : "supervisor/admin", "role": credentials.role])
        }
        let client = try HTTPSyncClient.enrolled(in: console.directory)
        do {
            try await ServerProbe.check(client.server)
            try await body(AdminClient(client: client))
            try? await client.shutdown()
        } catch {
            try? await client.shutdown()
            throw error
        }
    }

    struct Devices: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The tenant's devices and how far behind they are.")
        @OptionGroup var global: GlobalOptions

        func run() async throws {
            let console = Console(global)
            try await console.run {
                try await AdminCommand.withAdmin(console, command: "devices", need: .admin) { admin in
                    let devices = try await admin.devices()
                    if console.json { return console.emit(["devices": devices]) }
                    if devices.isEmpty { return console.say("admin.none") }
                    console.table(
                        [
                            "column.id", "column.user", "column.role", "column.last-seen", "column.lag",
                            "column.revoked",
                        ],
                        devices.map { health in
                            let device = health.device
                            return [
                                device.id, device.user, device.role,
                                device.lastSeenMs.map { TimeText.local(Int64($0)) } ?? "-", "\(health.lagChanges)",
                                device.revokedMs.map { TimeText.local(Int64($0)) } ?? console.text("no"),
                            ]
                        })
                }
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a device: its next request is refused.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The device ID (`admin devices`).") var device: String

        func run() async throws {
            let console = Console(global)
            try await console.run {
                try await AdminCommand.withAdmin(console, command: "revoke", need: .admin) { admin in
                    let revoked = try await admin.revoke(device)
                    if console.json { return console.emit(revoked) }
                    console.say("admin.revoked", ["id": revoked.device.id])
                }
            }
        }
    }

    struct Enroll: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "A one-time enrolment string for a new device.")
        @OptionGroup var global: GlobalOptions
        @Option var user: String
        @Option(help: "agent, field, supervisor or admin.") var role: String
        @Option(help: "Disaster recovery: the replica ID (16 hex digits) that rejoins with this string, and only it.")
        var rejoin: String?

        func run() async throws {
            let console = Console(global)
            try await console.run {
                try await AdminCommand.withAdmin(console, command: "enroll", need: .admin) { admin in
                    let enrolment = try await admin.enrol(user: user, role: role, rejoin: rejoin)
                    if console.json { return console.emit(enrolment) }
                    console.say(
                        "admin.enrolment",
                        [
                            "user": enrolment.user, "role": enrolment.role,
                            "expires": TimeText.local(Int64(enrolment.expiresMs)),
                        ])
                    print(enrolment.enrolment)
                }
            }
        }
    }

    struct Conflicts: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The whole tenant's open conflicts, from the server.")
        @OptionGroup var global: GlobalOptions

        func run() async throws {
            let console = Console(global)
            try await console.run {
                try await AdminCommand.withAdmin(console, command: "conflicts", need: .supervisor) { admin in
                    let views = try await admin.conflicts().map(ConflictView.init)
                    if console.json {
                        console.emit(["conflicts": views])
                    } else {
                        ConflictsCommand.printList(views, console)
                    }
                }
            }
        }
    }
}
