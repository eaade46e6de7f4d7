import DomainTestSupport
import Foundation
import Synchronization
import SystemTestSupport

/// A child process a drill can SIGKILL at a moment of its choosing (a `replica-cli sync` in the
/// middle of its work): output goes to files (a full pipe cannot block the child), no stdin.
///
/// ```swift
/// let sync = try KillableProcess.start(ChildProcess.builtProduct("replica-cli"), ["--data", dir, "sync"])
/// try await Task.sleep(for: .milliseconds(120))
/// let killed = sync.kill()          // false when it had already ended by itself
/// let status = await sync.wait()
/// ```
public final class KillableProcess: Sendable {
    private let process: Process
    /// The exit status once known, and who waits for it (a class: the handler closure must share it).
    private final class Ending: Sendable {
        let state = Mutex<(status: Int32?, waiters: [CheckedContinuation<Int32, Never>])>((nil, []))
    }
    private let ending = Ending()
    public let stdoutPath: String
    public let stderrPath: String

    /// Starts `executable` with `arguments`; `environment` replaces the inherited one when given.
    public static func start(
        _ executable: String, _ arguments: [String], environment: [String: String]? = nil
    ) throws -> KillableProcess {
        try KillableProcess(executable, arguments, environment: environment)
    }

    private init(_ executable: String, _ arguments: [String], environment: [String: String]?) throws {
        let scratch = NSTemporaryDirectory() + "killable-\(UUID().uuidString)"
        stdoutPath = scratch + ".out"
        stderrPath = scratch + ".err"
        FileManager.default.createFile(atPath: stdoutPath, contents: nil)
        FileManager.default.createFile(atPath: stderrPath, contents: nil)
        process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let environment { process.environment = environment }
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: stdoutPath))
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: stderrPath))
        let ending = self.ending
        process.terminationHandler = { process in
            let status = process.terminationStatus
            let waiters = ending.state.withLock { state in
                state.status = status
                defer { state.waiters = [] }
                return state.waiters
            }
            for waiter in waiters { waiter.resume(returning: status) }
        }
        try process.run()
    }

    /// True until the process has ended (by itself or killed).
    public var isRunning: Bool { ending.state.withLock { $0.status == nil } }

    /// SIGKILL; returns false when the process had already ended by itself.
    @discardableResult
    public func kill() -> Bool {
        guard isRunning else { return false }
        return Glibc.kill(process.processIdentifier, SIGKILL) == 0
    }

    /// Waits for the end; the exit status (or the signal number, for a killed process).
    public func wait() async -> Int32 {
        await withCheckedContinuation { continuation in
            let status: Int32? = ending.state.withLock { state in
                if state.status == nil { state.waiters.append(continuation) }
                return state.status
            }
            if let status { continuation.resume(returning: status) }
        }
    }

    /// Whether it ended by a signal (killed) rather than exiting.
    public var wasKilled: Bool { process.terminationReason == .uncaughtSignal }

    public var stdout: String { (try? String(contentsOfFile: stdoutPath, encoding: .utf8)) ?? "" }
    public var stderr: String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }

    deinit {
        if isRunning { Glibc.kill(process.processIdentifier, SIGKILL) }
        try? FileManager.default.removeItem(atPath: stdoutPath)
        try? FileManager.default.removeItem(atPath: stderrPath)
    }
}
