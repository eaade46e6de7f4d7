import Domain
import DomainTestSupport
import Foundation
import LocalStorage
import Replica
import ServerTestSupport
import StoreSupport
import SystemTestSupport
import Testing

/// A server process for the recovery drills: the real `sync-server` binary, or
/// `power-loss-server` (the same server library behind the power-loss VFS shim), on loopback.
/// It keeps the port it was first given, so replicas find it again after a restart.
final class RecoveryServerProcess {
    enum Program {
        case syncServer
        /// `power-loss-server serve`, checkpointing every `checkpointPages` WAL pages if given,
        /// with `PRAGMA synchronous = NORMAL` refused if `keepFullSync`.
        case powerLoss(checkpointPages: Int?, keepFullSync: Bool)
    }

    let data: String
    private(set) var port: Int
    private var process: Process?
    private var logPath = ""

    var url: String { "https://127.0.0.1:\(port)" }
    static var syncServer: String { ChildProcess.builtProduct("sync-server") }

    init(data: String, port: Int = 0) {
        self.data = data
        self.port = port
    }

    /// Starts `program` on `data` and waits until it listens (generously: the machine is shared).
    func start(_ program: Program = .syncServer) async throws {
        precondition(process == nil, "the server is already running")
        logPath = data + "-\(UUID().uuidString).log"
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        _ = FileManager.default.createFile(atPath: logPath + ".err", contents: nil)
        let process = Process()
        switch program {
        case .syncServer:
            process.executableURL = URL(fileURLWithPath: Self.syncServer)
            process.arguments = ["serve", "--data", data, "--host", "127.0.0.1", "--port", "\(port)"]
        case .powerLoss(let pages, let keepFullSync):
            process.executableURL = URL(fileURLWithPath: ChildProcess.builtProduct("power-loss-server"))
            process.arguments =
                ["serve", data, "\(port)"] + (pages.map { ["--checkpoint-every", "\($0)"] } ?? [])
                + (keepFullSync ? ["--keep-full-sync"] : [])
        }
        // Only the errors and the first line matter; the log level keeps stdout small.
        process.environment = ["KRALIKI_LOG_LEVEL": "error", "PATH": "/usr/bin:/bin"]
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath + ".err"))
        try process.run()
        self.process = process
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            let text = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
            if let match = text.firstMatch(of: /listening on https:\/\/127\.0\.0\.1:(\d+)/) {
                port = Int(match.output.1)!
                return
            }
            if !process.isRunning { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        // Say which: it exited (and with what), or it was still starting when the time ran out
        // (a starved machine) — a CI run saw this message with nothing after the colon.
        let exited = process.isRunning ? nil : process.terminationStatus
        let errors = (try? String(contentsOfFile: logPath + ".err", encoding: .utf8)) ?? ""
        let output = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
        kill()
        throw DrillFailure(
            "the server on \(data) (port \(port)) did not start: "
                + (exited.map { "it exited with status \($0)" } ?? "not listening after 60 s")
                + "; stderr: \(errors.suffix(2_000)); stdout: \(output.suffix(2_000))")
    }

    /// SIGKILL: no shutdown code runs (behind the shim, a power cut).
    func kill() { end(SIGKILL) }

    /// SIGTERM: a graceful shutdown.
    func stop() { end(SIGTERM) }

    private func end(_ signal: Int32) {
        guard let process else { return }
        if process.isRunning { Glibc.kill(process.processIdentifier, signal) }
        process.waitUntilExit()
        self.process = nil
        try? FileManager.default.removeItem(atPath: logPath)
        try? FileManager.default.removeItem(atPath: logPath + ".err")
    }

    /// A fresh enrolment code for `user`, from the real `sync-server enroll` (it writes to the
    /// store beside the running server).
    /// `rejoin`: the replica ID the code is for (a rejoin after a restore).
    func enrolment(user: String, role: String = "agent", rejoin: String? = nil) async throws -> EnrolmentLink {
        let output = try await ChildProcess.run(
            Self.syncServer,
            [
                "enroll", "--data", data, "--host", "127.0.0.1", "--port", "\(port)", "--tenant", "acme", "--user",
                user, "--role", role, "--json",
            ] + (rejoin.map { ["--rejoin", $0] } ?? []))
        let object = try JSONSerialization.jsonObject(with: Data(output.stdout.utf8)) as? [String: Any]
        guard let text = object?["enrolment"] as? String else {
            throw DrillFailure("sync-server enroll printed \(output)")
        }
        return try EnrolmentLink(parsing: text)
    }

    /// Enrols a new library replica in `directory`.
    func enrolReplica(in directory: String, user: String, role: String = "agent") async throws -> EnrolledReplica {
        _ = try await ReplicaEnrolment.enrol(try await enrolment(user: user, role: role), directory: directory)
        return try EnrolledReplica(directory: directory)
    }

    /// Runs `sync-server ARGUMENTS` on this server's data directory.
    func command(_ arguments: [String]) async throws -> ProcessOutput {
        try await ChildProcess.run(Self.syncServer, arguments + ["--data", data])
    }

    deinit { kill() }
}

/// A drill's own failure (a server that did not start, a command that printed nonsense).
struct DrillFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Contacts whose name carries who wrote them and how often: "w2 c17 v5" is writer 2's
/// contact 17 at its 5th version. Lets a drill tell a lost edit (an older version on the
/// server) and a duplicate (the same contact under two IDs) from a plain count.
struct VersionedName: Hashable, Comparable {
    let writer: Int
    let contact: Int
    let version: Int

    var text: String { "w\(writer) c\(contact) v\(version)" }
    var key: String { "w\(writer) c\(contact)" }

    init(writer: Int, contact: Int, version: Int) {
        self.writer = writer
        self.contact = contact
        self.version = version
    }

    init?(_ text: String) {
        guard let match = text.wholeMatch(of: /w(\d+) c(\d+) v(\d+)/) else { return nil }
        writer = Int(match.output.1)!
        contact = Int(match.output.2)!
        version = Int(match.output.3)!
    }

    static func < (left: VersionedName, right: VersionedName) -> Bool {
        (left.writer, left.contact, left.version) < (right.writer, right.contact, right.version)
    }
}

/// What a set of contacts says about the versioned names: newest version per key, and the
/// keys that appear under more than one entity ID (duplicates).
struct VersionCensus {
    var newestByKey = [String: VersionedName]()
    var idsByKey = [String: Set<EntityID>]()

    init(_ state: TenantState) {
        for (id, contact) in state.contacts.valueByKey where contact.isActive {
            for value in contact.name.values {
                guard let name = VersionedName(value) else { continue }
                idsByKey[name.key, default: []].insert(id)
                if (newestByKey[name.key]?.version ?? -1) < name.version { newestByKey[name.key] = name }
            }
        }
    }

    var duplicated: Int { idsByKey.values.filter { $0.count > 1 }.count }
}

extension LocalStore {
    /// Writes with the system clock; a refused command is a bug in the drill.
    @discardableResult
    func drillWrite(
        _ command: (inout TenantState, WriteContext) throws(ValidationError) -> TenantState
    ) throws
        -> TenantState
    {
        try write(wall: SyncEngine.systemWall(), command)
    }
}
