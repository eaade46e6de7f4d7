import Foundation

/// What a child process printed and how it ended.
public struct ProcessOutput: Sendable, CustomStringConvertible {
    public let status: Int32
    public let stdout: String
    public let stderr: String

    public var description: String { "exit \(status)\nstdout: \(stdout)\nstderr: \(stderr)" }
}

/// Runs real programs for tests (the built `sync-server` and `replica-cli`, `openssl`, `python3`):
/// one helper, so every test gets the same care — output through files (a full pipe cannot
/// block the child), no stdin, and an async wait.
public enum ChildProcess {
    /// A product built beside the running test bundle (`.build/debug/NAME`).
    public static func builtProduct(_ name: String) -> String {
        URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent().path + "/" + name
    }

    /// Runs `executable` with `arguments` to its end. `environment` replaces the inherited one
    /// when given.
    public static func run(
        _ executable: String, _ arguments: [String], environment: [String: String]? = nil
    )
        async throws -> ProcessOutput
    {
        let scratch = NSTemporaryDirectory() + "child-\(UUID().uuidString)"
        FileManager.default.createFile(atPath: scratch + ".out", contents: nil)
        FileManager.default.createFile(atPath: scratch + ".err", contents: nil)
        defer {
            try? FileManager.default.removeItem(atPath: scratch + ".out")
            try? FileManager.default.removeItem(atPath: scratch + ".err")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let environment { process.environment = environment }
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: scratch + ".out"))
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: scratch + ".err"))
        let status: Int32 = try await withCheckedThrowingContinuation { continuation in
            process.terminationHandler = { continuation.resume(returning: $0.terminationStatus) }
            do { try process.run() } catch { continuation.resume(throwing: error) }
        }
        return ProcessOutput(
            status: status, stdout: (try? String(contentsOfFile: scratch + ".out", encoding: .utf8)) ?? "",
            stderr: (try? String(contentsOfFile: scratch + ".err", encoding: .utf8)) ?? "")
    }
}
