import ArgumentParser
import Foundation
import LocalStorage
import Replica
import ReplicaPresentation
import StoreSupport

/// `repair`: rebuild a damaged replica under its own ID (docs/user-guides/cli.md, "A damaged
/// replica").
struct RepairCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "repair",
        abstract: "Rebuild a damaged replica under its own ID: keep its unpushed work, pull the rest again.",
        discussion: """
            For a replica whose file fails its integrity check (exit code 3, "is damaged"). Reads what only \
            this file holds — identity, server, unpushed and refused changes, history — into a new file, \
            moves the damaged one aside (replica.sqlite.damaged-<time>, never deleted) and puts the new one \
            in its place. The next `replica-cli sync` pushes your changes and pulls everything else again. \
            Refuses a replica that is not damaged.
            """)
    @OptionGroup var global: GlobalOptions

    func run() throws {
        let console = Console(global)
        try console.run {
            let report = try StoreRepair.repair(in: console.directory, wall: SyncEngine.systemWall())
            if console.json {
                console.emit(report)
                return
            }
            console.say(
                "repair.done",
                [
                    "replica": report.replica, "user": report.user, "tenant": report.tenant,
                    "pending": "\(report.pendingChanges)", "refused": "\(report.refusedChanges)",
                    "audit": "\(report.auditRows)", "file": report.damagedFile,
                ])
            if report.readingStopped { console.say("repair.partial", ["file": report.damagedFile]) }
        }
    }
}
