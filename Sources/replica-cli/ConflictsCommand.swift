import ArgumentParser
import Domain
import Foundation
import LocalStorage
import Replica
import ReplicaPresentation
import StoreSupport

struct ConflictsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "conflicts", abstract: "List, show and resolve the conflicts this replica knows of.",
        subcommands: [List.self, Show.self, Resolve.self])

    static func printList(_ conflicts: [ConflictView], _ console: Console) {
        if conflicts.isEmpty { return console.say("conflicts.none") }
        console.table(
            ["column.id", "column.kind", "column.field", "column.value"],
            conflicts.map { conflict in
                [
                    conflict.id, conflict.kind, conflict.field ?? "",
                    conflict.sides.map { "\($0.number)) \($0.value)" }.joined(separator: " | "),
                ]
            })
    }

    /// The open conflict `text` names: its ID, or the only one whose ID starts with or holds `text`.
    static func find(_ text: String, in conflicts: [Conflict]) throws -> Conflict {
        if let exact = conflicts.first(where: { $0.id == text }) { return exact }
        let matches = conflicts.filter { $0.id.hasPrefix(text) || $0.id.contains(text) }
        guard matches.count == 1 else {
            throw CommandFailure.user(
                "error.unknown-id", code: "unknown-reference", field: "conflict", ["kind": "open conflict", "id": text])
        }
        return matches[0]
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Every open conflict, by ID.")
        @OptionGroup var global: GlobalOptions

        func run() throws {
            let console = Console(global)
            try console.run {
                let store = try console.openStore()
                let views = try store.refreshConflicts().map(ConflictView.init)
                if console.json {
                    console.emit(["conflicts": views])
                } else {
                    ConflictsCommand.printList(views, console)
                }
            }
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Each side of a conflict: value, who, which device, when.")
        @OptionGroup var global: GlobalOptions
        @Argument var id: String

        func run() throws {
            let console = Console(global)
            try console.run {
                let store = try console.openStore()
                let view = ConflictView(try ConflictsCommand.find(id, in: store.state.conflicts()))
                if console.json { return console.emit(["conflict": view]) }
                print("\(view.id)")
                print(
                    "  \(console.text("column.kind")): \(view.kind)"
                        + (view.field.map { "   \(console.text("column.field")): \($0)" } ?? ""))
                for side in view.sides {
                    let when =
                        (try? TimeText.parse(side.at, field: "at")).map { TimeText.local($0, seconds: true) } ?? side.at
                    print("")
                    print(
                        "  " + console.text("conflicts.side", ["number": "\(side.number)"])
                            + "  (\(side.entityKind) \(side.entity))")
                    print("    \(side.field): \(side.value)")
                    print(
                        "    \(console.text("column.user")): \(side.user)   \(console.text("column.device")): \(side.device)   \(console.text("column.when")): \(when)"
                    )
                }
                print("")
                print(
                    console.text(
                        "conflicts.options", ["options": view.resolutions.map { "--" + $0 }.joined(separator: ", ")]))
            }
        }
    }

    struct Resolve: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Resolve a conflict with exactly one option that fits its kind.")
        @OptionGroup var global: GlobalOptions
        @Argument var id: String
        @Option(help: "Keep side N (from `conflicts show`).") var pick: Int?
        @Option(help: "Write a new value over every side.") var value: String?
        @Flag(help: "Undelete the entity.") var restore = false
        @Flag(name: .customLong("confirm-delete"), help: "Keep it deleted.") var confirmDelete = false
        @Option(name: .customLong("merge-into"), help: "Merge the duplicates into this contact.") var mergeInto: String?
        @Flag(name: .customLong("not-duplicate"), help: "The two contacts are different people.")
        var notDuplicate = false
        @Flag(help: "Keep as it is (overlapping entries, orphaned note).") var accept = false
        @Option(
            name: .customLong("move-to"), parsing: .upToNextOption,
            help: "START END: move one double-booked entry (the later one, or --entry).")
        var moveTo: [String] = []
        @Flag(help: "Cancel one double-booked entry (the later one, or --entry).") var cancel = false
        @Option(help: "Which entry --move-to or --cancel acts on.") var entry: String?
        @Option(help: "Attach the orphaned note to this contact.") var reattach: String?

        func run() throws {
            let console = Console(global)
            try console.run {
                let store = try console.openStore()
                let conflict = try ConflictsCommand.find(id, in: store.state.conflicts())
                let chosen = [
                    pick != nil, value != nil, restore, confirmDelete, mergeInto != nil, notDuplicate, accept,
                    !moveTo.isEmpty, cancel, reattach != nil,
                ].filter { $0 }.count
                guard chosen == 1 else { throw CommandFailure.user("error.one-resolution", field: "resolution") }
                let target =
                    try entry.map { try console.id($0, in: store.reader, [.schedule], name: "schedule entry") }
                    ?? conflict.entities.last!.id
                let resolution: Resolution
                if let pick {
                    resolution = .pick(pick - 1)
                } else if let value {
                    resolution = .value(value)
                } else if restore {
                    resolution = .restore
                } else if confirmDelete {
                    resolution = .confirmDelete
                } else if let mergeInto {
                    resolution = .mergeInto(try console.id(mergeInto, in: store.reader, [.contact], name: "contact"))
                } else if notDuplicate {
                    resolution = .notDuplicate
                } else if accept {
                    resolution = .accept
                } else if !moveTo.isEmpty {
                    guard moveTo.count == 2 else {
                        throw CommandFailure.user("error.move-to", code: "invalid-format", field: "move-to")
                    }
                    resolution = .moveTo(
                        entry: target,
                        try Interval(
                            start: try TimeText.parse(moveTo[0], field: "start"),
                            end: try TimeText.parse(moveTo[1], field: "end"), timeZone: TimeText.localZoneName))
                } else if cancel {
                    resolution = .cancel(entry: target)
                } else {
                    resolution = .reattach(try console.id(reattach!, in: store.reader, [.contact], name: "contact"))
                }
                let delta = try store.write(wall: SyncEngine.systemWall()) { s, c throws(Domain.ValidationError) in
                    try s.resolve(conflict.id, resolution, c)
                }
                _ = try store.refreshConflicts()
                if console.json {
                    console.emit(["id": conflict.id, "resolved": delta.isBottom ? "false" : "true"])
                } else {
                    console.say("conflicts.resolved", ["id": conflict.id])
                }
            }
        }
    }
}

struct HistoryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "history", abstract: "The audit trail of a contact, note or schedule entry.")
    @OptionGroup var global: GlobalOptions
    @Argument var id: String

    func run() throws {
        let console = Console(global)
        try console.run {
            let reader = try console.openReader()
            let entity = try console.id(id, in: reader, EntityKind.allCases, name: "record")
            guard let history = try reader.history(of: entity) else { throw console.unknown(id, name: "record") }
            if console.json { return console.emit(history) }
            func local(_ iso: String) -> String {
                (try? TimeText.parse(iso, field: "at")).map { TimeText.local($0, seconds: true) } ?? iso
            }
            print("\(history.kind) \(history.id)")
            print("")
            print(console.text("history.trail"))
            if history.changes.isEmpty {
                console.say("history.none")
            } else {
                console.table(
                    ["column.when", "column.user", "column.device", "column.action"],
                    history.changes.map {
                        [local($0.at), $0.user, $0.device, console.text("history.action." + $0.action)]
                    })
            }
            print("")
            print(console.text("history.current"))
            console.table(
                ["column.when", "column.field", "column.value", "column.user", "column.device"],
                history.fields.map { [local($0.at), $0.field, String($0.value.prefix(60)), $0.user, $0.device] })
        }
    }
}
