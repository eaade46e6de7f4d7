import ArgumentParser
import Domain
import Foundation
import LocalStorage
import Replica
import ReplicaPresentation
import StoreSupport

/// `refused list` and `refused reissue`: what the server refused, and re-entering it from a
/// fresh replica (docs/user-guides/cli.md, "Refused changes").
struct RefusedCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "refused", abstract: "Show what refused changes contained; re-issue them from a fresh replica.",
        subcommands: [List.self, Reissue.self])

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Each refused change with the server's reason and the values it carried (read-only).")
        @OptionGroup var global: GlobalOptions
        @Option(help: "Read this replica directory instead of --data (opened read-only).") var from: String?

        struct Output: Encodable {
            let replica: String
            let user: String
            let tenant: String
            let refused: [Change]
        }

        struct Change: Encodable {
            let localSequence: UInt64
            let code: String
            let reason: String
            let entities: [EntityChange]
        }

        func run() throws {
            let console = Console(global)
            try console.run {
                let directory = from.map { ($0 as NSString).expandingTildeInPath } ?? console.directory
                let refused = try RefusedChanges.read(from: directory)
                let output = Output(
                    replica: refused.identity.replica.hex, user: refused.identity.user,
                    tenant: refused.identity.tenant,
                    refused: refused.changes.map {
                        Change(
                            localSequence: $0.localSequence, code: $0.code, reason: $0.reason,
                            entities: $0.change.entityChanges())
                    })
                if console.json {
                    console.emit(output)
                    return
                }
                guard !output.refused.isEmpty else {
                    console.say("refused.none", ["replica": output.replica])
                    return
                }
                console.say(
                    "refused.header",
                    [
                        "replica": output.replica, "user": output.user, "tenant": output.tenant,
                        "count": "\(output.refused.count)",
                    ])
                for change in output.refused {
                    console.say(
                        "refused.change",
                        ["sequence": "\(change.localSequence)", "code": change.code, "reason": change.reason])
                    for entity in change.entities { print("  " + describe(entity, console)) }
                }
            }
        }
    }

    struct Reissue: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Re-enter the refused changes of an OLD replica here, as new changes with this replica's clock.",
            discussion: """
                Run it in the new, enrolled and synced replica. The old replica is opened read-only. Creations get \
                new IDs (notes and entries pointing at them follow); edits of records that are gone or deleted here \
                are left out and listed. Running it again re-issues nothing twice.
                """)
        @OptionGroup var global: GlobalOptions
        @Option(help: "The OLD replica's directory (the one whose changes were refused).") var from: String
        @Flag(name: .customLong("dry-run"), help: "Show what would be re-issued; change nothing.") var dryRun = false

        func run() throws {
            let console = Console(global)
            try console.run {
                let store = try console.openStore()
                let refused = try RefusedChanges.read(from: (from as NSString).expandingTildeInPath)
                let report = try store.reissue(refused, wall: SyncEngine.systemWall(), dryRun: dryRun)
                if !dryRun && !report.reissued.isEmpty { _ = try store.refreshConflicts() }
                if console.json {
                    console.emit(report)
                    return
                }
                show(report, console)
            }
        }

        private func show(_ report: ReissueReport, _ console: Console) {
            let already = report.alreadyReissued.map { "#\($0)" }.joined(separator: ", ")
            guard !report.reissued.isEmpty else {
                console.say("refused.nothing-new", ["replica": report.from, "sequences": already])
                return
            }
            console.say(
                report.dryRun ? "refused.dry-run" : "refused.done",
                ["changes": "\(report.reissued.count)", "replica": report.from, "commands": "\(report.commands)"])
            for change in report.reissued {
                for created in change.created {
                    print(
                        "  "
                            + console.text(
                                "refused.created",
                                [
                                    "sequence": "\(change.localSequence)",
                                    "kind": console.text("refused.kind.\(created.kind.rawValue)"),
                                    "old": created.old.text, "new": created.new.text,
                                ]))
                }
            }
            let leftOut = report.reissued.flatMap { change in change.leftOut.map { (change.localSequence, $0) } }
            if !leftOut.isEmpty {
                console.say("refused.left-out", ["count": "\(leftOut.count)"])
                for (sequence, item) in leftOut {
                    print(
                        "  "
                            + console.text(
                                "refused.left-out-item",
                                [
                                    "sequence": "\(sequence)",
                                    "action": console.text("refused.action.\(item.change.action.rawValue)"),
                                    "kind": console.text("refused.kind.\(item.change.kind.rawValue)"),
                                    "id": item.change.id.text, "reason": item.detail,
                                ]))
                    for field in item.change.fields { print("      " + describe(field)) }
                }
            }
            if !already.isEmpty { console.say("refused.already", ["sequences": already]) }
        }
    }
}

/// `create contact 0000…: name = Jana; phones + +420601234567`.
private func describe(_ entity: EntityChange, _ console: Console) -> String {
    let head =
        console.text("refused.action.\(entity.action.rawValue)") + " "
        + console.text("refused.kind.\(entity.kind.rawValue)") + " " + entity.id.text
    return entity.fields.isEmpty ? head : head + ": " + entity.fields.map(describe).joined(separator: "; ")
}

private func describe(_ field: FieldChange) -> String {
    switch field.action {
    case .set: "\(field.field) = \(field.value)"
    case .add: "\(field.field) + \(field.value)"
    case .remove: field.value.isEmpty ? "\(field.field) −" : "\(field.field) − \(field.value)"
    }
}
