// The `sync-server` executable stays thin: it parses arguments, resolves the config and calls
// SyncServer. Every failure is one plain sentence on stderr and a non-zero exit code.
import ArgumentParser
import CRDT
import Domain
import Foundation
import Logging
import StoreSupport
import SyncServer

/// Flags shared by every command that reads the config (flags win over the environment, which
/// wins over the config file, which wins over the defaults).
struct ConfigOptions: ParsableArguments {
    @Option(help: "JSON config file (see docs/deployment/configuration.md).") var config: String?
    @Option(help: "Data directory (default ./data).") var data: String?
    @Option(help: "Address to listen on (default 127.0.0.1).") var host: String?
    @Option(help: "Port to listen on (default 8443).") var port: Int?

    func resolve() throws -> ServerConfig {
        try ServerConfig.resolve(file: config, environment: ProcessInfo.processInfo.environment) { resolved in
            if let data { resolved.dataDirectory = data }
            if let host { resolved.host = host }
            if let port { resolved.port = port }
        }
    }
}

@main
struct SyncServerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sync-server",
        abstract: "The Kraliki Sync server: HTTP/2 over TLS with an embedded SQLite store.",
        subcommands: [
            Serve.self, Enroll.self, Enrolments.self, Secrets.self, Backup.self, Restore.self, Collect.self,
        ],
        defaultSubcommand: Serve.self)
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Serve until SIGTERM or SIGINT (the default command).")
    @OptionGroup var options: ConfigOptions
    @Flag(help: "Refuse development settings (generated certificate, placeholder secrets, readable keys).")
    var production = false
    @Flag(help: "Cleartext HTTP/2 (h2c), only on loopback, for h2load and curl --http2-prior-knowledge.")
    var h2c = false

    func run() async throws {
        try await failing {
            var config = try options.resolve()
            if production { config.production = true }
            if h2c { config.cleartextHTTP2 = true }
            try config.validate()
            let level = Logger.Level(rawValue: config.logLevel) ?? .info
            LoggingSystem.bootstrap { label in JSONLogHandler(label: label, level: level) }
            let launcher = try ServerLauncher(config: config)
            let fingerprint = launcher.certificate?.fingerprint
            let generated = launcher.certificate?.generated == true
            let resolved = config
            let flags = options
            try await launcher.serve { port in
                let scheme = resolved.cleartextHTTP2 ? "http" : "https"
                let host = resolved.host.contains(":") ? "[\(resolved.host)]" : resolved.host
                var lines = ["Kraliki Sync server listening on \(scheme)://\(host):\(port) (HTTP/2)"]
                if let fingerprint {
                    lines.append("certificate SHA-256 fingerprint: \(fingerprint)")
                    if generated { lines.append("(generated for development: \(resolved.certificatePath))") }
                }
                lines.append(
                    "data: \(resolved.dataDirectory)   enrol a device: \(flags.enrolCommand(listeningOn: port, configured: resolved.port))"
                )
                print(lines.joined(separator: "\n"))
                fflush(nil)  // all streams: the line must reach a pipe now
            }
        }
    }
}

extension ConfigOptions {
    /// The `enroll` command for a server started with these flags: the same flags, and the port
    /// it listens on (with `--port 0`, the one it picked), so the enrolment string names this
    /// server. (A bare hint on another port or data directory it made a
    /// string for a server that was not there.)
    func enrolCommand(listeningOn port: Int, configured: Int) -> String {
        var words = ["sync-server", "enroll"]
        if let config { words += ["--config", shellWord(config)] }
        if let data { words += ["--data", shellWord(data)] }
        if let host { words += ["--host", shellWord(host)] }
        if self.port != nil || port != configured { words += ["--port", String(port)] }
        return (words + ["--tenant", "T", "--user", "U", "--role", "R"]).joined(separator: " ")
    }
}

/// `text` as one word for a POSIX shell: as it is when it holds only safe characters, else in
/// single quotes.
func shellWord(_ text: String) -> String {
    let safe = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:=@%+,")
    if !text.isEmpty && text.allSatisfy(safe.contains) { return text }
    return "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'"
}

struct Enroll: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create a one-time enrolment code for a user (works while the server runs).")
    @OptionGroup var options: ConfigOptions
    @Option(help: "Tenant (created if new).") var tenant: String
    @Option(help: "User (created if new).") var user: String
    @Option(help: "agent, field, supervisor or admin.") var role: String
    @Option(
        help: "Disaster recovery: the replica ID (16 hex digits, `replica-cli status`) that rejoins with this code.")
    var rejoin: String?
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        try await failing {
            let config = try options.resolve()
            guard let role = Role(rawValue: role) else {
                throw ServerConfig.Problem(
                    setting: "--role", message: "must be agent, field, supervisor or admin, not \(role)")
            }
            let fingerprint: String?
            if config.cleartextHTTP2 {
                fingerprint = nil
            } else {
                fingerprint = try ServerCertificate.prepare(config).fingerprint
            }
            var replica: ReplicaID?
            if let rejoin {
                guard let parsed = ReplicaID(hex: rejoin), parsed.rawValue != 0 else {
                    throw ServerConfig.Problem(
                        setting: "--rejoin", message: "must be a replica ID of 16 hexadecimal digits")
                }
                replica = parsed
            }
            let store = try ServerDatabase.open(in: config.dataDirectory)
            let code = try store.createEnrolmentCode(
                tenant: tenant, user: user, role: role, wall: ServerRuntime.systemWall(),
                lifetimeMs: UInt64(config.enrolmentCodeHours) * 3_600_000, actor: "cli", rejoinReplica: replica)
            let link = EnrolmentLink(server: config.url, code: code.code, fingerprint: fingerprint)
            if json {
                struct Output: Encodable {
                    let code: String, tenant: String, user: String, role: String, expiresMs: UInt64, server: String
                    let fingerprint: String?, enrolment: String
                }
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys]
                print(
                    String(
                        decoding: try encoder.encode(
                            Output(
                                code: code.code, tenant: code.tenant, user: code.user, role: code.role.rawValue,
                                expiresMs: code.expiresMs, server: config.url, fingerprint: fingerprint,
                                enrolment: link.description)), as: UTF8.self))
            } else {
                let expires = Date(timeIntervalSince1970: Double(code.expiresMs) / 1000)
                print(
                    """
                    Enrolment code for \(code.user) (\(code.role.rawValue)) in tenant \(code.tenant), valid until \(expires):
                      \(code.code)
                    On the device run:
                      replica-cli init '\(link)'
                    """)
            }
        }
    }
}

struct Enrolments: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List or withdraw a tenant's enrolment codes that were not used yet (works while the server runs).",
        subcommands: [List.self, Revoke.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The tenant's codes that can still enrol a device: ID, user, role, expiry.")
        @OptionGroup var options: ConfigOptions
        @Option(help: "Tenant.") var tenant: String
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            try await failing {
                let config = try options.resolve()
                let codes = try ServerDatabase.open(in: config.dataDirectory).pendingCodes(
                    tenant: tenant, wall: ServerRuntime.systemWall())
                if json {
                    let encoder = JSONEncoder()
                    encoder.outputFormatting = [.sortedKeys]
                    print(String(decoding: try encoder.encode(codes), as: UTF8.self))
                } else if codes.isEmpty {
                    print("no pending enrolment codes in \(tenant)")
                } else {
                    for code in codes {
                        let expires = TimeText.utc(Int64(code.expiresMs))
                        let rejoin = code.rejoinReplica.map { ", rejoin of \($0)" } ?? ""
                        print("\(code.id)  \(code.user) (\(code.role.rawValue)), valid until \(expires)\(rejoin)")
                    }
                }
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Withdraw a pending code (by the ID `enrolments list` shows): it enrols nothing any more.")
        @OptionGroup var options: ConfigOptions
        @Option(help: "Tenant.") var tenant: String
        @Argument(help: "The code's ID (16 hex digits, from `enrolments list`).") var id: String

        func run() async throws {
            try await failing {
                let config = try options.resolve()
                let code = try ServerDatabase.open(in: config.dataDirectory).revokeCode(
                    id: id.lowercased(), tenant: tenant, actor: "cli", wall: ServerRuntime.systemWall())
                print("withdrew enrolment code \(code.id) for \(code.user) (\(code.role.rawValue)) in \(tenant)")
            }
        }
    }
}

struct Secrets: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Manage the server's secrets file.", subcommands: [Generate.self])

    struct Generate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Write fresh secrets (mode 0600).")
        @OptionGroup var options: ConfigOptions
        @Flag(help: "Replace an existing secrets file.") var force = false

        func run() async throws {
            try await failing {
                let config = try options.resolve()
                if FileManager.default.fileExists(atPath: config.secretsPath) && !force {
                    throw ServerConfig.Problem(
                        setting: "secretsFile", message: "\(config.secretsPath) exists; pass --force to replace it")
                }
                try ServerSecrets.generate().write(to: config.secretsPath)
                print("wrote fresh secrets to \(config.secretsPath) (mode 0600)")
            }
        }
    }
}

struct Backup: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Take an online, consistent backup (safe while the server serves).")
    @OptionGroup var options: ConfigOptions
    @Option(help: "The backup file to write (must not exist).") var out: String

    func run() async throws {
        try await failing {
            let config = try options.resolve()
            let store = try ServerDatabase.open(in: config.dataDirectory)
            let bytes = try store.backup(to: out, wall: ServerRuntime.systemWall())
            print("backed up \(store.path) to \(out) (\(bytes) bytes, fsynced)")
        }
    }
}

struct Restore: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Restore a backup into the data directory and start a new server epoch (server stopped).")
    @OptionGroup var options: ConfigOptions
    @Option(help: "The backup file.") var from: String

    func run() async throws {
        try await failing {
            let config = try options.resolve()
            if DataDirectoryLock.isHeld(directory: config.dataDirectory) {
                throw ServerConfig.Problem(
                    setting: "--data", message: "a server is serving \(config.dataDirectory); stop it before restoring")
            }
            let epochs = try ServerDatabase.restore(
                from: from, into: config.dataDirectory, wall: ServerRuntime.systemWall())
            print("restored \(from) into \(config.dataDirectory); new epoch for \(epochs.count) tenant(s):")
            for (tenant, epoch) in epochs.sorted(by: { $0.key < $1.key }) { print("  \(tenant): \(epoch)") }
            print("replicas re-push what the backup lacks at their next sync")
        }
    }
}

struct Collect: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gc",
        abstract: "Collect deletions older than the retention and superseded log entries now (safe while serving).")
    @OptionGroup var options: ConfigOptions

    func run() async throws {
        try await failing {
            let config = try options.resolve()
            let store = try ServerDatabase.open(in: config.dataDirectory)
            let collection = try store.collectGarbage(retention: config.retentionMs, wall: ServerRuntime.systemWall())
            print("retention \(config.retentionDays) days: \(collection)")
        }
    }
}

/// Runs `body`; turns any failure into one sentence on stderr and exit code 1.
func failing(_ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let error as ExitCode {
        throw error
    } catch {
        FileHandle.standardError.write(Data("sync-server: \(error)\n".utf8))
        throw ExitCode(1)
    }
}
