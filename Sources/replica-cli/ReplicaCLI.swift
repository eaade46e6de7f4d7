import ArgumentParser
import Foundation
import LocalStorage
import Replica
import ReplicaPresentation
import StoreSupport

/// `replica-cli`: the offline-first command-line replica. Parsing, calling Replica, printing;
/// nothing else lives here.
@main
struct ReplicaCLI: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replica-cli",
        abstract: "The offline-first Kraliki Sync replica: contacts, call notes, schedules, sync and conflicts.",
        discussion: """
            Every command works without the server except init, sync and admin.
            Exit codes: 0 success, 1 bad input / unknown ID / not permitted, 2 server unreachable or sync \
            incomplete (local work kept), 3 local store problem. See docs/user-guides/cli.md.
            """,
        subcommands: [
            InitCommand.self, ContactCommand.self, NoteCommand.self, ScheduleCommand.self, SyncCommand.self,
            StatusCommand.self, RepairCommand.self, RefusedCommand.self, ConflictsCommand.self, HistoryCommand.self,
            ExportCommand.self,
            ImportCommand.self,
            AdminCommand.self,
        ])

    /// Parses with the global options hoisted; usage errors exit 1 (not ArgumentParser's 64), as documented.
    static func main() async {
        let arguments = GlobalOptions.hoist(Array(CommandLine.arguments.dropFirst()))
        do {
            var command = try parseAsRoot(arguments)
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch let exit as ExitCode {
            Foundation.exit(exit.rawValue)
        } catch {
            let code = exitCode(for: error)
            let message = fullMessage(for: error)
            if code == .success {
                print(message)
                Foundation.exit(0)
            }
            FileHandle.standardError.write(Data((message + "\n").utf8))
            Foundation.exit(1)
        }
    }
}
