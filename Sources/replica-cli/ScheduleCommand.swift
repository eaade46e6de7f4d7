import ArgumentParser
import Domain
import Foundation
import LocalStorage
import Replica
import ReplicaPresentation
import StoreSupport

struct ScheduleCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "schedule", abstract: "Call-backs, appointments and shifts.",
        subcommands: [Add.self, Move.self, Cancel.self, Done.self, List.self])

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add a schedule entry; prints its ID.")
        @OptionGroup var global: GlobalOptions
        @Option var title: String
        @Option(help: "ISO 8601, e.g. 2026-03-02T09:30:00+01:00 (no offset: local time).") var start: String
        @Option(help: "ISO 8601; after the start.") var end: String
        @Option(help: "callback, appointment or shift (default appointment).") var kind: String?
        @Option(help: "A user (repeatable; default: this replica's user).") var assignee: [String] = []
        @Option(help: "The contact it concerns.") var contact: String?
        @Option var location: String?

        func run() throws {
            let console = Console(global)
            try console.run {
                let store = try console.openStore()
                let startMs = try TimeText.parse(start, field: "start")
                let endMs = try TimeText.parse(end, field: "end")
                let contactID = try contact.map { try console.id($0, in: store.reader, [.contact], name: "contact") }
                let draft = ScheduleDraft(
                    title: title, start: startMs, end: endMs, timeZone: TimeText.localZoneName, kind: kind,
                    assignees: assignee, contact: contactID, location: location)
                try console.write(store, key: "schedule.added") { s, c throws(Domain.ValidationError) in
                    try s.addScheduleEntry(draft, c)
                }
            }
        }
    }

    struct Move: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Move an entry to a new start and end.")
        @OptionGroup var global: GlobalOptions
        @Argument var id: String
        @Option var start: String
        @Option var end: String

        func run() throws {
            let console = Console(global)
            try console.run {
                let store = try console.openStore()
                let entry = try console.id(id, in: store.reader, [.schedule], name: "schedule entry")
                let interval = try Interval(
                    start: try TimeText.parse(start, field: "start"), end: try TimeText.parse(end, field: "end"),
                    timeZone: TimeText.localZoneName)
                try console.write(store, key: "schedule.moved", id: entry) { s, c throws(Domain.ValidationError) in
                    try s.moveScheduleEntry(entry, to: interval, c)
                }
            }
        }
    }

    struct Cancel: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Cancel an entry.")
        @OptionGroup var global: GlobalOptions
        @Argument var id: String

        func run() throws {
            let console = Console(global)
            try console.run {
                let store = try console.openStore()
                let entry = try console.id(id, in: store.reader, [.schedule], name: "schedule entry")
                try console.write(store, key: "schedule.cancelled", id: entry) { s, c throws(Domain.ValidationError) in
                    try s.setScheduleStatus(entry, .cancelled, c)
                }
            }
        }
    }

    struct Done: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Mark an entry done.")
        @OptionGroup var global: GlobalOptions
        @Argument var id: String

        func run() throws {
            let console = Console(global)
            try console.run {
                let store = try console.openStore()
                let entry = try console.id(id, in: store.reader, [.schedule], name: "schedule entry")
                try console.write(store, key: "schedule.done", id: entry) { s, c throws(Domain.ValidationError) in
                    try s.setScheduleStatus(entry, .done, c)
                }
            }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Entries by start time, in local time.")
        @OptionGroup var global: GlobalOptions
        @Option(help: "Only this day, YYYY-MM-DD (local time).") var day: String?
        @Option(help: "Only the Monday-to-Sunday week holding this day, YYYY-MM-DD.") var week: String?
        @Option var assignee: String?

        func run() throws {
            let console = Console(global)
            try console.run {
                let reader = try console.openReader()
                var from = Int64.min
                var to = Int64.max
                if let day {
                    from = try TimeText.startOfDay(day, field: "day")
                    to = TimeText.addingDays(1, to: from)
                } else if let week {
                    from = TimeText.startOfWeek(containing: try TimeText.startOfDay(week, field: "week"))
                    to = TimeText.addingDays(7, to: from)
                }
                let entries = try reader.scheduleState(from: from, to: to, assignee: assignee)
                    .scheduleViews(from: from, to: to, assignee: assignee)
                if console.json {
                    console.emit(["schedule": entries])
                } else if entries.isEmpty {
                    console.say("schedule.none")
                } else {
                    func local(_ iso: String?) -> String {
                        iso.flatMap { try? TimeText.parse($0, field: "time") }.map { TimeText.local($0) } ?? ""
                    }
                    console.table(
                        [
                            "column.id", "column.start", "column.end", "column.kind", "column.title",
                            "column.assignees",
                            "column.status",
                        ],
                        entries.map { entry in
                            [
                                entry.id, local(entry.start), local(entry.end), entry.kind ?? "", entry.title,
                                entry.assignees.joined(separator: ","), entry.status ?? "",
                            ]
                        })
                }
            }
        }
    }
}
