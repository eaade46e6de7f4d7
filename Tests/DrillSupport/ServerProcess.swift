import Domain
import DomainTestSupport
import Foundation
import GRDB
import LocalStorage
import Replica
import StoreSupport
import Synchronization
import SystemTestSupport

/// The real `sync-server` binary as a child process on a loopback port, with its data directory:
/// started, stopped (SIGTERM) or killed (SIGKILL), and started again on the same port and data,
/// so enrolled replicas keep their URL and pinned certificate across restarts.
///
/// ```swift
/// let server = ServerProcess(data: directory.sub("data"))
/// try await server.start()                 // port 0 the first time: a free port
/// let link = try await server.link(user: "petr", role: "field")
/// server.kill()                            // SIGKILL, as a crash or power cut of the process
/// #expect(try server.integrityCheck() == ["ok"])
/// try await server.start()                 // same port, same data
/// ```
///
/// The in-process server of ServerTestSupport cannot crash like this: it shares the test's
/// process and keeps its data directory locked.
public final class ServerProcess: @unchecked Sendable {
    // @unchecked: the mutable process and port are guarded by `lock`.
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
        public init(_ description: String) { self.description = description }
    }

    public let data: String
    private let lock = Mutex<(process: Process?, port: Int, starts: Int)>((nil, 0, 0))
    /// The server's output of every start, appended (kept beside the data for a failing drill).
    public let logPath: String

    public static var binary: String { ChildProcess.builtProduct("sync-server") }

    /// Settings for the server process (`KRALIKI_*`), over this process's environment.
    public let environment: [String: String]
    /// A JSON config file's content, passed with `--config` (nil: the defaults).
    public let config: String?
    /// Kept while the server lives, when the server made its own directory.
    private let directory: TempDirectory?

    /// `port` 0 picks a free port at the first start; later starts reuse it.
    public init(data: String, port: Int = 0, environment: [String: String] = [:], config: String? = nil) {
        self.data = data
        self.environment = environment
        self.config = config
        self.directory = nil
        logPath = data + "-server.log"
        lock.withLock { $0.port = port }
    }

    private init(directory: TempDirectory, config: String?) {
        self.data = directory.sub("data")
        self.environment = [:]
        self.config = config
        self.directory = directory
        logPath = data + "-server.log"
    }

    /// A server in a fresh temporary directory of its own, started, with `config` (a JSON
    /// config file's content).
    public static func started(_ label: String, config: String? = nil) async throws -> ServerProcess {
        let server = ServerProcess(directory: TempDirectory(label), config: config)
        try await server.start()
        return server
    }

    public var port: Int { lock.withLock { $0.port } }
    public var url: String { "https://127.0.0.1:\(port)" }
    public var isRunning: Bool { lock.withLock { $0.process?.isRunning ?? false } }
    /// How many times the server was started.
    public var starts: Int { lock.withLock { $0.starts } }
    /// The server's database file.
    public var databasePath: String { data + "/server.sqlite" }
    /// The certificate the server generated on its first start.
    public var certificatePath: String { data + "/tls/server-cert.pem" }
    /// The process ID of the running server (0 when it is not running).
    public var pid: Int32 { lock.withLock { $0.process?.processIdentifier ?? 0 } }
    /// Everything the server printed, every start.
    public var output: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// The server's resident set size in KiB (VmRSS in /proc/<pid>/status): the server alone,
    /// not the test process.
    public func residentKiB() throws -> Int {
        let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
            let kib = Int(line.split(separator: " ", omittingEmptySubsequences: true)[1])
        else { throw Failure("no VmRSS in /proc/\(pid)/status") }
        return kib
    }

    /// Starts the server (on the port it had before, if any) and waits until it listens.
    /// After a kill the port may still be held for a moment; the start is retried for `timeout`.
    public func start(timeout: Duration = .seconds(60)) async throws {
        precondition(!isRunning, "the server is already running")
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while true {
            if try await attemptStart(until: deadline) { return }
            guard clock.now < deadline else { break }
            try await Task.sleep(for: .milliseconds(200))
        }
        throw Failure("sync-server did not start listening within \(timeout); see \(logPath)")
    }

    private func attemptStart(until deadline: ContinuousClock.Instant) async throws -> Bool {
        let marker = "--- start \(UUID().uuidString) ---\n"
        try append(marker)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.binary)
        var arguments = ["--data", data, "--port", "\(port)"]
        if let config {
            let file = data + "-config.json"
            try config.write(toFile: file, atomically: true, encoding: .utf8)
            arguments += ["--config", file]
        }
        process.arguments = arguments
        if !environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        }
        process.standardInput = FileHandle.nullDevice
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        log.seekToEndOfFile()
        process.standardOutput = log
        process.standardError = log
        try process.run()
        try? log.close()
        lock.withLock {
            $0.process = process
            $0.starts += 1
        }
        // The log is read once more after the deadline: in the long tier, CPU-bound fuzz tests
        // can hold the test runner's threads for a minute, so this task may first run again
        // after the deadline although the server started long before.
        while true {
            let text = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
            let mine = text.components(separatedBy: marker).last ?? ""
            if let match = mine.firstMatch(of: /listening on https:\/\/127\.0\.0\.1:(\d+)/) {
                lock.withLock { $0.port = Int(match.output.1)! }
                return true
            }
            if !process.isRunning {
                // Most likely the port is still held by the killed process's sockets: retry.
                lock.withLock { $0.process = nil }
                return false
            }
            if ContinuousClock.now >= deadline { break }
            try await Task.sleep(for: .milliseconds(25))
        }
        kill()
        return false
    }

    private func append(_ text: String) throws {
        if !FileManager.default.fileExists(atPath: logPath) {
            FileManager.default.createFile(atPath: logPath, contents: nil)
        }
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        handle.seekToEndOfFile()
        handle.write(Data(text.utf8))
        try? handle.close()
    }

    /// SIGKILL: the process dies at once, mid-transaction if it was in one; waits until it is gone.
    public func kill() {
        guard
            let process = lock.withLock({ state in
                defer { state.process = nil }; return state.process
            })
        else {
            return
        }
        if process.isRunning { Glibc.kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    /// SIGTERM: a graceful stop; waits until it is gone.
    public func stop() {
        guard
            let process = lock.withLock({ state in
                defer { state.process = nil }; return state.process
            })
        else {
            return
        }
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
    }

    /// `PRAGMA integrity_check` on `server.sqlite`: `["ok"]` when the file is sound. Run it while
    /// the server is down (after ``kill()``): opening the file replays its write-ahead log, as
    /// the restarted server will.
    public func integrityCheck() throws -> [String] {
        let queue = try DatabaseQueue(path: databasePath)
        defer { try? queue.close() }
        return try queue.read { db in try String.fetchAll(db, sql: "PRAGMA integrity_check") }
    }

    /// The enrolment string `sync-server enroll` prints for a new device of `user`.
    public func enrolment(tenant: String = "acme", user: String, role: String) async throws -> String {
        let output = try await ChildProcess.run(
            Self.binary,
            [
                "enroll", "--data", data, "--port", "\(port)", "--tenant", tenant, "--user", user, "--role", role,
                "--json",
            ])
        let object = try? JSONSerialization.jsonObject(with: Data(output.stdout.utf8)) as? [String: Any]
        guard let enrolment = object?["enrolment"] as? String else {
            throw Failure("sync-server enroll printed \(output)")
        }
        return enrolment
    }

    /// The enrolment for `user`, parsed; `through` replaces the server URL (a ``FaultProxy``'s),
    /// keeping the certificate fingerprint, so the replica pins the real server through the proxy.
    public func link(
        tenant: String = "acme", user: String, role: String, through url: String? = nil
    ) async throws
        -> EnrolmentLink
    {
        let link = try EnrolmentLink(parsing: try await enrolment(tenant: tenant, user: user, role: role))
        guard let url else { return link }
        return EnrolmentLink(server: url, code: link.code, fingerprint: link.fingerprint)
    }

    deinit { kill() }
}
