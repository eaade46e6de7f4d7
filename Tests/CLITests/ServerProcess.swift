import DomainTestSupport
import Foundation
import Testing

/// The real `sync-server` binary on a loopback port, as a child process: started, stopped with
/// SIGTERM and started again on the same port and data (the in-process server keeps its data
/// directory locked for as long as the test holds it).
final class ServerProcess {
    let data: String
    private(set) var port: Int
    private var process: Process?

    static var binary: String { ChildProcess.builtProduct("sync-server") }

    init(data: String) {
        self.data = data
        port = 0
    }

    /// Starts the server (on the port it had before, if any) and waits until it listens.
    func start() async throws {
        let log = data + "-\(UUID().uuidString).log"
        FileManager.default.createFile(atPath: log, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.binary)
        process.arguments = ["--data", data, "--port", "\(port)"]
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        process.standardError = FileHandle.nullDevice
        try process.run()
        self.process = process
        for _ in 0..<200 {
            let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            if let match = text.firstMatch(of: /listening on https:\/\/127\.0\.0\.1:(\d+)/) {
                port = Int(match.output.1)!
                return
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw CancellationError()
    }

    func stop() {
        guard let process else { return }
        process.terminate()
        process.waitUntilExit()
        self.process = nil
    }

    /// The enrolment string `sync-server enroll` prints for `user`.
    func enrolment(user: String, role: String) async throws -> String {
        let output = try await Self.run([
            "enroll", "--data", data, "--port", "\(port)", "--tenant", "acme", "--user", user, "--role", role, "--json",
        ])
        let object = try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any]
        return try #require(object?["enrolment"] as? String, "sync-server enroll printed \(output)")
    }

    private static func run(_ arguments: [String]) async throws -> String {
        try await ChildProcess.run(binary, arguments).stdout
    }

    deinit { stop() }
}
