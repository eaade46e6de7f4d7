import Foundation
import Hummingbird
import Logging
import StoreSupport
import Synchronization

/// Prepares everything `sync-server serve` needs from a config: the data directory and its
/// lock, the certificate (generated on first start), the secrets, the production checks, the
/// store. Tests start real servers through it too.
public struct ServerLauncher: Sendable {
    public let config: ServerConfig
    public let certificate: ServerCertificate?
    public let secrets: ServerSecrets?
    public let store: ServerDatabase
    public let logger: Logger
    /// Held while serving so `restore` cannot replace the file under a running server.
    let lock: DataDirectoryLock

    public init(config: ServerConfig, logger: Logger? = nil) throws {
        try config.validate()
        self.config = config
        try PrivateFile.createDirectory(config.dataDirectory)
        lock = try DataDirectoryLock(directory: config.dataDirectory)
        certificate = config.cleartextHTTP2 ? nil : try ServerCertificate.prepare(config)
        var secrets = try ServerSecrets.load(config.secretsPath)
        if secrets == nil, !config.production {
            // Like the generated certificate: a development server has a metrics token from its
            // first start (in the data directory, mode 0600); production needs its own.
            let fresh = ServerSecrets.generate()
            do { try fresh.write(to: config.secretsPath) } catch {
                throw ServerConfig.Problem(
                    setting: "secretsFile", message: "cannot write \(config.secretsPath): \(error)")
            }
            secrets = fresh
        }
        self.secrets = secrets
        if config.production {
            let problems = config.productionProblems(certificate: certificate, secrets: secrets)
            if !problems.isEmpty { throw ProductionRefusal(problems: problems) }
        }
        store = try ServerDatabase.open(
            in: config.dataDirectory, maxForwardDrift: UInt64(config.driftBoundSeconds) * 1000,
            maxPullChanges: config.limits.maxPullChanges, maxUnenrolledReplicas: config.limits.maxUnenrolledReplicas)
        var logger = logger ?? Logger(label: "kraliki.sync-server")
        logger.logLevel = Logger.Level(rawValue: config.logLevel) ?? .info
        self.logger = logger
    }

    /// What the server's routes and services share while it runs.
    public func runtime() -> ServerRuntime {
        ServerRuntime(
            config: config, database: store, fingerprint: certificate?.fingerprint, secrets: secrets, logger: logger)
    }

    /// Serves until SIGTERM/SIGINT (or the task is cancelled); `onRunning` gets the bound port.
    public func serve(onRunning: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
        let app = try SyncServerApp(runtime: runtime(), certificate: certificate).application(onRunning: onRunning)
        defer { close() }
        try await app.runService()
    }

    /// Releases the data directory (after the server stopped): a restore may replace it now.
    public func close() { lock.release() }
}

/// Production mode found development settings; lists each with what to fix.
public struct ProductionRefusal: Error, CustomStringConvertible {
    public let problems: [ServerConfig.Problem]
    public var description: String {
        "refusing to start in production mode:\n" + problems.map { "  - \($0)" }.joined(separator: "\n")
    }
}

/// An exclusive `flock` on `<data>/server.lock`.
public final class DataDirectoryLock: Sendable {
    private let descriptor: Mutex<Int32>

    init(directory: String) throws {
        let path = (directory as NSString).appendingPathComponent("server.lock")
        // O_CLOEXEC: a flock belongs to the open file, which a child process started meanwhile
        // would inherit and hold after this server closed it — the next server on the directory
        // was then refused (a test restarting its server while another test ran child processes).
        let opened = Glibc.open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard opened >= 0 else {
            throw ServerConfig.Problem(setting: "dataDirectory", message: "cannot create \(path) (errno \(errno))")
        }
        guard flock(opened, LOCK_EX | LOCK_NB) == 0 else {
            Glibc.close(opened)
            throw ServerConfig.Problem(
                setting: "dataDirectory", message: "another sync-server is already serving \(directory)")
        }
        descriptor = Mutex(opened)
    }

    /// Unlocks (once).
    func release() {
        descriptor.withLock { descriptor in
            if descriptor >= 0 { Glibc.close(descriptor) }
            descriptor = -1
        }
    }

    /// Whether a server holds the lock of `directory` now.
    public static func isHeld(directory: String) -> Bool {
        let path = (directory as NSString).appendingPathComponent("server.lock")
        let descriptor = Glibc.open(path, O_RDWR)
        guard descriptor >= 0 else { return false }
        defer { Glibc.close(descriptor) }
        if flock(descriptor, LOCK_EX | LOCK_NB) == 0 {
            flock(descriptor, LOCK_UN)
            return false
        }
        return true
    }

    deinit { release() }
}
