import CLITestSupport
import DomainTestSupport
import Foundation
import ServerTestSupport
import SystemTestSupport
import Testing

/// `sync --watch`: follows the server's live stream and pulls what another replica pushes.
@Suite("replica-cli sync --watch")
struct WatchTests {
    @Test func watchPullsChangesFromAnotherReplica() async throws {
        let server = try await RunningServer.start()
        let home = TempDirectory("cli-watch")
        let watcher = CLI(data: home.sub("watcher"))
        let writer = CLI(data: home.sub("writer"))
        try await watcher.ok(["init", try server.link(user: "anna", role: .agent).description])
        try await writer.ok(["init", try server.link(user: "petr", role: .agent).description])

        let log = home.sub("watch.log")
        FileManager.default.createFile(atPath: log, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: CLI.binary)
        process.arguments = ["sync", "--watch", "--json", "--data", watcher.data]
        process.environment = ["LANG": "C", "TZ": "UTC", "PATH": "/usr/bin:/bin"]
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        process.standardError = FileHandle.nullDevice
        try process.run()
        defer { if process.isRunning { process.terminate() } }

        func events() -> [[String: Any]] {
            ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").split(separator: "\n").compactMap {
                try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
            }
        }
        // The first sync happens as soon as the live stream is open.
        for _ in 0..<200 where events().isEmpty { try await Task.sleep(for: .milliseconds(50)) }
        #expect(events().first?["event"] as? String == "synced")

        try await writer.create(["contact", "add", "--name", "Seen live"])
        try await writer.ok(["sync"])
        for _ in 0..<200 where !events().contains(where: { ($0["pulled"] as? Int ?? 0) > 0 }) {
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(events().contains { ($0["pulled"] as? Int ?? 0) > 0 }, "\(events())")

        kill(process.processIdentifier, SIGINT)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        let names = try await watcher.json(["contact", "list"])["contacts"] as? [[String: Any]]
        #expect(names?.map { $0["name"] as? String } == ["Seen live"])
        await server.stop()
    }
}
