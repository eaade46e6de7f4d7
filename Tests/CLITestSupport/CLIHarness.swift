import CRDT
import DomainTestSupport
import Foundation
import LocalStorage
import Replica
import StoreSupport
import SystemTestSupport
import Testing

extension ProcessOutput {
    public var json: Any? { try? JSONSerialization.jsonObject(with: Data(stdout.utf8)) }
    public var object: [String: Any] { (json as? [String: Any]) ?? [:] }
}

/// Runs the real `replica-cli` binary (built beside the test bundle) as a subprocess.
public struct CLI {
    public typealias Output = ProcessOutput

    public static var binary: String { ChildProcess.builtProduct("replica-cli") }

    public let data: String
    public var environment: [String: String] = ["LANG": "C", "TZ": "Europe/Prague"]

    public init(data: String) { self.data = data }

    /// Runs `replica-cli ARGS --data DATA`; output goes through files so no pipe can fill up.
    public func run(_ arguments: [String], input: String? = nil) async throws -> Output {
        try await Self.run(arguments + ["--data", data], environment: environment)
    }

    public static func run(_ arguments: [String], environment: [String: String]) async throws -> Output {
        var env = ProcessInfo.processInfo.environment
        for key in ["LANG", "LC_ALL", "LC_MESSAGES", "KRALIKI_REPLICA_HOME"] { env[key] = nil }
        env.merge(environment) { $1 }
        return try await ChildProcess.run(binary, arguments, environment: env)
    }

    /// Runs and expects success; returns the output.
    @discardableResult
    public func ok(_ arguments: [String], sourceLocation: SourceLocation = #_sourceLocation) async throws -> Output {
        let output = try await run(arguments)
        #expect(
            output.status == 0, "replica-cli \(arguments.joined(separator: " ")): \(output)",
            sourceLocation: sourceLocation)
        return output
    }

    /// `--json` output of a command, parsed.
    public func json(
        _ arguments: [String], sourceLocation: SourceLocation = #_sourceLocation
    ) async throws -> [String: Any] {
        try await ok(arguments + ["--json"], sourceLocation: sourceLocation).object
    }

    /// The ID a creating command printed with --json.
    public func create(_ arguments: [String], sourceLocation: SourceLocation = #_sourceLocation) async throws -> String
    {
        let id = try await json(arguments, sourceLocation: sourceLocation)["id"] as? String
        return try #require(id, "no id from \(arguments)", sourceLocation: sourceLocation)
    }
}

/// A replica store made directly (no server), for commands that never talk to one.
public func offlineReplica(_ directory: TempDirectory, user: String = "jana") throws -> CLI {
    let path = directory.sub("replica")
    _ = try LocalStore.create(
        in: path, identity: ReplicaIdentity(replica: ReplicaID(0x5EED), user: user, tenant: "acme"))
    return CLI(data: path)
}
