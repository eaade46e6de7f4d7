import DomainTestSupport
import Foundation
import Replica
import ServerTestSupport
import SyncServer
import Testing

/// The README's main job, as the built `sync-server` binary: starts on a fresh data directory,
/// generates its certificate, prints URL and fingerprint, serves HTTP/2 over TLS, enrols from
/// another process while running, takes an online backup, and stops cleanly on SIGTERM.
@Suite("sync-server binary")
struct MainJobTests {
    static var binary: String {
        URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent().path
            + "/sync-server"
    }

    static func run(_ arguments: [String]) throws -> (status: Int32, output: String, error: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        let output = Pipe()
        let error = Pipe()
        process.standardOutput = output
        process.standardError = error
        try process.run()
        let out = output.fileHandleForReading.readDataToEndOfFile()
        let err = error.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: out, as: UTF8.self), String(decoding: err, as: UTF8.self))
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
        // The first lines: URL and fingerprint.
        var text = ""
        let reader = output.fileHandleForReading
        while !text.contains("fingerprint") {
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

        // Enrol from another process while it serves.
        let enrol = try Self.run([
            "enroll", "--data", data, "--port", String(port), "--tenant", "acme", "--user", "jana", "--role", "field",
            "--json",
        ])
        #expect(enrol.status == 0, "\(enrol.error)")
        let enrolment = try JSONSerialization.jsonObject(with: Data(enrol.output.utf8)) as? [String: Any]
        let link = try #require(enrolment?["enrolment"] as? String)
        #expect(link.contains(String(fingerprint)))
        let replicaDirectory = directory.sub("replica")
        _ = try await ReplicaEnrolment.enrol(try EnrolmentLink(parsing: link), directory: replicaDirectory)

        // An online backup while serving.
        let backup = try Self.run(["backup", "--data", data, "--out", directory.sub("backup.sqlite")])
        #expect(backup.status == 0, "\(backup.error)")
        // Restore refuses while the server holds the data directory.
        let restore = try Self.run(["restore", "--data", data, "--from", directory.sub("backup.sqlite")])
        #expect(restore.status == 1)
        #expect(restore.error.contains("stop it before restoring"))

        kill(server.processIdentifier, SIGTERM)
        server.waitUntilExit()
        #expect(server.terminationReason == .exit && server.terminationStatus == 0)
        let restored = try Self.run(["restore", "--data", data, "--from", directory.sub("backup.sqlite")])
        #expect(restored.status == 0, "\(restored.error)")
        #expect(restored.output.contains("new epoch"))
    }

    @Test("bad flags and config get one sentence and exit code 1, never a stack trace")
    func badInvocation() throws {
        let directory = TempDirectory("bad-flags")
        let role = try Self.run([
            "enroll", "--data", directory.sub("d"), "--tenant", "acme", "--user", "x", "--role", "king",
        ])
        #expect(role.status == 1)
        #expect(role.error.contains("--role") && !role.error.contains("Fatal"))
        let tenant = try Self.run([
            "enroll", "--data", directory.sub("d"), "--tenant", "ACME!", "--user", "x", "--role", "agent",
        ])
        #expect(tenant.status == 1)
        #expect(tenant.error.contains("tenant"))
        let h2c = try Self.run(["--data", directory.sub("d"), "--host", "0.0.0.0", "--h2c"])
        #expect(h2c.status == 1)
        #expect(h2c.error.contains("loopback"))
    }
}
