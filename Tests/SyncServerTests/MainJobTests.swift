import Domain
import DomainTestSupport
import Foundation
import LocalStorage
import Replica
import ServerTestSupport
import StoreSupport
import SyncServer
import SystemTestSupport
import Testing

/// The README's main job, as the built `sync-server` binary: starts on a fresh data directory,
/// generates its certificate, prints URL and fingerprint, serves HTTP/2 over TLS, enrols from
/// another process while running, takes an online backup, and stops cleanly on SIGTERM.
@Suite("sync-server binary")
struct MainJobTests {
    static var binary: String { ChildProcess.builtProduct("sync-server") }

    static func run(_ arguments: [String]) async throws -> ProcessOutput {
        try await ChildProcess.run(binary, arguments)
    }

    @Test("serve, enroll while serving, backup while serving, SIGTERM")
    func mainJob() async throws {
        let directory = TempDirectory("main-job")
        let data = directory.sub("data")
        let server = Process()
        server.executableURL = URL(fileURLWithPath: Self.binary)
        server.arguments = ["--data", data, "--port", "0"]
        let output = Pipe()
        server.standardOutput = output
        server.standardError = FileHandle.nullDevice
        try server.run()
        defer { if server.isRunning { kill(server.processIdentifier, SIGKILL) } }
        // The first lines: URL, fingerprint, the enroll command for this server.
        var text = ""
        let reader = output.fileHandleForReading
        while !text.contains("enrol a device") {
            let chunk = reader.availableData
            if chunk.isEmpty { break }
            text += String(decoding: chunk, as: UTF8.self)
        }
        let url = try #require(text.split(separator: " ").first { $0.hasPrefix("https://127.0.0.1:") }).description
        let port = try #require(Int(url.split(separator: ":").last!))
        let fingerprint = try #require(
            text.split(separator: "\n").first { $0.contains("fingerprint") }?.split(separator: " ").last)
        let certificate = try ServerCertificate.load(
            certificatePath: data + "/tls/server-cert.pem", keyPath: data + "/tls/server-key.pem")
        #expect(certificate.fingerprint == String(fingerprint))
        let keyMode =
            try FileManager.default.attributesOfItem(atPath: data + "/tls/server-key.pem")[.posixPermissions] as? Int
        #expect(keyMode == 0o600)

        // Enrol from another process while it serves, with the command the server printed: it
        // names the data directory and the port it picked (the link must reach this server).
        let hint = try #require(text.split(separator: "\n").first { $0.contains("enrol a device: ") })
        let hinted = hint.split(separator: "enrol a device: ")[1].split(separator: " ").map(String.init)
        let expected = ["sync-server", "enroll", "--data", data, "--port", String(port)]
        #expect(hinted == expected + ["--tenant", "T", "--user", "U", "--role", "R"], "\(hint)")
        let arguments =
            Array(hinted.dropFirst().dropLast(6)) + ["--tenant", "acme", "--user", "jana", "--role", "field"]
        let enrol = try await Self.run(arguments + ["--json"])
        #expect(enrol.status == 0, "\(enrol.stderr)")
        let enrolment = try JSONSerialization.jsonObject(with: Data(enrol.stdout.utf8)) as? [String: Any]
        let link = try #require(enrolment?["enrolment"] as? String)
        #expect(link.contains(String(fingerprint)))
        #expect(enrolment?["server"] as? String == url, "the server as it listens")
        let replicaDirectory = directory.sub("replica")
        _ = try await ReplicaEnrolment.enrol(try EnrolmentLink(parsing: link), directory: replicaDirectory)

        // An online backup while serving.
        let backup = try await Self.run(["backup", "--data", data, "--out", directory.sub("backup.sqlite")])
        #expect(backup.status == 0, "\(backup.stderr)")
        // Restore refuses while the server holds the data directory.
        let restore = try await Self.run(["restore", "--data", data, "--from", directory.sub("backup.sqlite")])
        #expect(restore.status == 1)
        #expect(restore.stderr.contains("stop it before restoring"))

        kill(server.processIdentifier, SIGTERM)
        server.waitUntilExit()
        #expect(server.terminationReason == .exit && server.terminationStatus == 0)
        let restored = try await Self.run(["restore", "--data", data, "--from", directory.sub("backup.sqlite")])
        #expect(restored.status == 0, "\(restored.stderr)")
        #expect(restored.stdout.contains("new epoch"))
    }

    @Test("bad flags and config get one sentence and exit code 1, never a stack trace")
    func badInvocation() async throws {
        let directory = TempDirectory("bad-flags")
        let role = try await Self.run([
            "enroll", "--data", directory.sub("d"), "--tenant", "acme", "--user", "x", "--role", "king",
        ])
        #expect(role.status == 1)
        #expect(role.stderr.contains("--role") && !role.stderr.contains("Fatal"))
        let tenant = try await Self.run([
            "enroll", "--data", directory.sub("d"), "--tenant", "ACME!", "--user", "x", "--role", "agent",
        ])
        #expect(tenant.status == 1)
        #expect(tenant.stderr.contains("tenant"))
        let h2c = try await Self.run(["--data", directory.sub("d"), "--host", "0.0.0.0", "--h2c"])
        #expect(h2c.status == 1)
        #expect(h2c.stderr.contains("loopback"))
    }
}
