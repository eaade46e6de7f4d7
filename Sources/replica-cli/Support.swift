import ArgumentParser
import CRDT
import Domain
import Foundation
import LocalStorage
import Replica
import ReplicaPresentation
import StoreSupport

extension Language: ExpressibleByArgument {}

/// Options every command takes (they may also come before the subcommand: `replica-cli --json
/// contact list`).
struct GlobalOptions: ParsableArguments {
    @Option(help: "The replica's directory (default: $KRALIKI_REPLICA_HOME, else ~/.kraliki-replica).")
    var data: String?

    @Flag(help: "Print machine-readable JSON (documented in docs/user-guides/cli.md).")
    var json = false

    @Option(help: "Language of messages: cs or en (default: from LANG).")
    var lang: Language?

    static let valued: Set<String> = ["--data", "--lang"]
    static let flags: Set<String> = ["--json"]

    /// Moves global options given before the subcommand to the end, where the subcommand parses them.
    static func hoist(_ arguments: [String]) -> [String] {
        var front = [String]()
        var moved = [String]()
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            let name = argument.split(separator: "=", maxSplits: 1).first.map(String.init) ?? argument
            if flags.contains(argument) {
                moved.append(argument)
            } else if valued.contains(name) {
                moved.append(argument)
                if !argument.contains("="), index + 1 < arguments.count {
                    moved.append(arguments[index + 1])
                    index += 1
                }
            } else {
                break
            }
            index += 1
        }
        front = Array(arguments[index...])
        return front + moved
    }
}

/// What a command needs to talk to the user and reach the store: the catalogue, the output
/// mode, the data directory.
struct Console {
    let options: GlobalOptions
    let catalogue: Catalogue

    init(_ options: GlobalOptions) {
        self.options = options
        catalogue = Catalogue(options.lang ?? Language.fromEnvironment())
    }

    var json: Bool { options.json }

    var directory: String {
        if let data = options.data { return (data as NSString).expandingTildeInPath }
        if let home = ProcessInfo.processInfo.environment["KRALIKI_REPLICA_HOME"], !home.isEmpty { return home }
        return (NSHomeDirectory() as NSString).appendingPathComponent(".kraliki-replica")
    }

    /// Whether a progress indicator may be drawn: standard error is a terminal and not --json.
    var showsProgress: Bool { !json && isatty(STDERR_FILENO) == 1 }

    func text(_ key: String, _ arguments: [String: String] = [:]) -> String { catalogue.text(key, arguments) }

    /// Prints a catalogue sentence (human mode only).
    func say(_ key: String, _ arguments: [String: String] = [:]) {
        if !json { print(text(key, arguments)) }
    }

    func emit(_ value: some Encodable) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let data = (try? encoder.encode(value)) ?? Data("{}".utf8)
        print(String(decoding: data, as: UTF8.self))
    }

    /// One compact JSON object on one line (for streams such as `sync --watch --json`).
    func emitLine(_ value: some Encodable) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data = (try? encoder.encode(value)) ?? Data("{}".utf8)
        print(String(decoding: data, as: UTF8.self))
    }

    /// Prints `rows` under `headers` (catalogue keys), columns aligned.
    func table(_ headers: [String], _ rows: [[String]]) {
        let titles = headers.map { text($0) }
        var widths = titles.map(\.count)
        for row in rows {
            for (index, cell) in row.enumerated() where index < widths.count {
                widths[index] = max(widths[index], cell.count)
            }
        }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { index, cell in
                index == cells.count - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
            }.joined(separator: "  ")
        }
        print(line(titles))
        for row in rows { print(line(row)) }
    }

    /// The replica with its whole state in memory: for commands that write (or derive conflicts).
    func openStore() throws -> LocalStore { try LocalStore.open(in: directory) }

    /// The replica for commands that only show rows and a few entities: nothing is loaded that
    /// they do not print (at 100,000 contacts `contact show` takes 0.16 s and 36 MB, not 0.83 s
    /// and 248 MB; docs/performance.md).
    func openReader() throws -> ReplicaReader { try ReplicaReader.open(in: directory) }

    func credentials() throws -> DeviceCredentials { try DeviceCredentials.load(from: directory) }

    /// Reports `error` (to standard error; as JSON on standard output with --json) and returns
    /// the exit code.
    func report(_ error: any Error, duringSync: Bool = false) -> ExitCode {
        let failure = CommandFailure.classify(error, duringSync: duringSync)
        let message = failure.message(catalogue)
        if json {
            struct Body: Encodable {
                let error: Detail
            }
            struct Detail: Encodable {
                let code: String
                let field: String?
                let message: String
                let exitCode: Int32
            }
            emit(
                Body(
                    error: Detail(
                        code: failure.code, field: failure.field, message: message, exitCode: failure.exitCode)))
        }
        FileHandle.standardError.write(Data(("replica-cli: " + message + "\n").utf8))
        return ExitCode(failure.exitCode)
    }

    /// Runs `body`, turning any error into its message and exit code.
    func run(duringSync: Bool = false, _ body: () throws -> Void) throws {
        do { try body() } catch let exit as ExitCode { throw exit } catch {
            throw report(error, duringSync: duringSync)
        }
    }

    func run(duringSync: Bool = false, _ body: () async throws -> Void) async throws {
        do { try await body() } catch let exit as ExitCode { throw exit } catch {
            throw report(error, duringSync: duringSync)
        }
    }

    // MARK: Helpers for commands

    /// The entity `text` names (a full ID or a unique prefix of 6+ digits), of one of `kinds`.
    func id(_ text: String, in reader: ReplicaReader, _ kinds: [EntityKind], name: String) throws -> EntityID {
        guard let id = try reader.resolveID(text, kinds: kinds) else { throw unknown(text, name: name) }
        return id
    }

    /// No `name` (contact, note, …) has the ID `text` here.
    func unknown(_ text: String, name: String) -> CommandFailure {
        CommandFailure.user("error.unknown-id", code: "unknown-reference", field: "id", ["kind": name, "id": text])
    }

    /// Runs a command on the store and reports `key` with the entity's ID.
    @discardableResult
    func write(
        _ store: LocalStore, key: String, id: EntityID? = nil,
        _ command: (inout TenantState, WriteContext) throws(Domain.ValidationError) -> TenantState
    ) throws -> EntityID? {
        let delta = try store.write(wall: SyncEngine.systemWall(), command)
        let created =
            id ?? (delta.contacts.sortedKeys.first ?? delta.notes.sortedKeys.first ?? delta.schedule.sortedKeys.first)
        _ = try store.refreshConflicts()
        let shown = created?.text ?? ""
        if json {
            emit(["id": shown])
        } else if delta.isBottom {
            say("unchanged", ["id": shown])
        } else {
            say(key, ["id": shown])
        }
        return created
    }

    func now() -> Int64 { Int64(SyncEngine.systemWall()) }

    /// `--field KEY=VALUE` pairs.
    func keyValues(_ pairs: [String]) throws -> [String: String] {
        var result = [String: String]()
        for pair in pairs {
            guard let equals = pair.firstIndex(of: "=") else {
                throw CommandFailure.user("error.key-value", code: "invalid-format", field: "field", ["value": pair])
            }
            result[String(pair[..<equals])] = String(pair[pair.index(after: equals)...])
        }
        return result
    }
}

func bytesText(_ bytes: Int) -> String {
    if bytes < 1024 { return "\(bytes) B" }
    if bytes < 1024 * 1024 { return String(format: "%.1f KiB", Double(bytes) / 1024) }
    return String(format: "%.1f MiB", Double(bytes) / 1024 / 1024)
}
