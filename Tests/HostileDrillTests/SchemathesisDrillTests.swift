import CRDTTestSupport
import DomainTestSupport
import Foundation
import LocalStorage
import ServerTestSupport
import StoreSupport
import SyncServer
import SystemTestSupport
import Testing

/// Drill 8, second half: schemathesis (an independent, OpenAPI-driven fuzzer from PyPI)
/// generates requests from docs/api/openapi.yaml against a real server and checks every answer
/// against the document: no 5xx, status codes, content types, response schemas and headers as
/// documented, invalid data rejected.
@Suite("OpenAPI fuzzer drill")
struct SchemathesisDrillTests {
    static var executable: String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        return path.split(separator: ":").map { "\($0)/schemathesis" }.first {
            FileManager.default.isExecutableFile(atPath: $0)
        }
    }

    /// CI installs schemathesis (.ci/run); there a missing fuzzer fails the drill instead of
    /// silently skipping it. A developer without it skips.
    static var shouldRun: Bool { executable != nil || ProcessInfo.processInfo.environment["CI"] == "true" }

    @Test(
        "schemathesis run docs/api/openapi.yaml: no 5xx, no schema violation",
        .enabled(if: shouldRun, "schemathesis is not installed (pip install schemathesis==4.32.5)"))
    func schemathesis() async throws {
        let executable = try #require(
            Self.executable, "schemathesis is not on PATH; .ci/run installs it (pip install schemathesis==4.32.5)")
        let seed = FuzzSettings.replaySeed ?? 0x0A91
        let examples = FuzzSettings.isLong ? 500 : 40
        let server = try await RunningServer.start()
        let raw = try RawClient(server: server)
        // An admin device, so every route is reachable with the fuzzer's one token.
        let admin = try await raw.enrol(server, user: "fuzzer", role: .admin)
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let reports = TempDirectory("schemathesis")
        let arguments = [
            "run", root.appendingPathComponent("docs/api/openapi.yaml").path,
            "--url", server.url,
            "-H", "Authorization: Bearer \(admin.token)",
            "--tls-verify", server.launcher.certificate!.certificatePath,
            // The live stream never ends by design; its own tests cover it.
            "--exclude-path", "/v1/sync/live",
            "--max-examples", "\(examples)", "--seed", "\(seed)", "--request-timeout", "30",
            // Its response-time check defaults to 10 s. This server is in-process, a debug build,
            // sharing the test runner's threads with every other suite; in the long tier one
            // answer took 14.8 s of that contention. A response slower than the request timeout
            // still fails.
            "--max-response-time", "30",
            // Every check but one: "positive data acceptance" expects a schema-valid body to be
            // accepted, but some rules are not expressible in a schema (a push's `replica` must be
            // the caller's own device ID; a rejoining replica ID must be free), and the server
            // rightly answers those with a documented 400.
            "--checks", "all", "--exclude-checks", "positive_data_acceptance",
            // Not the stateful phase: it follows the document's links from the device list to
            // revoke, revokes the fuzzer's own device and then only sees 401s.
            "--phases", "examples,coverage,fuzzing",
            // No example database: a run depends on its seed alone, and leaves nothing in the tree.
            "--generation-database", "none",
            "--no-color", "--report-dir", reports.path,
        ]
        print("schemathesis: seed \(seed) (replay with KRALIKI_SEED=\(seed)), \(examples) examples per operation")
        let started = ContinuousClock.now
        // Run in a scratch directory: schemathesis keeps a cache (`.schemathesis/`) in its working
        // directory, and the repository is not the place for it.
        let result = try await ChildProcess.run(
            "/bin/sh", ["-c", "cd \"$0\" && exec \"$@\"", reports.path, executable] + arguments)
        let summary = result.stdout.split(separator: "\n").filter {
            $0.contains("generated") || $0.contains("passed") || $0.contains("failures") || $0.contains("❌")
        }
        print(
            "schemathesis: exit \(result.status) after \(ContinuousClock.now - started); "
                + summary.suffix(3).joined(separator: " | "))
        #expect(
            result.status == 0,
            "schemathesis found problems:\n\(result.stdout.suffix(6_000))\n\(result.stderr.suffix(2_000))")
        #expect(result.stdout.contains("Tested:"), "schemathesis did not test: \(result)")
        #expect(try await raw.send(.GET, "/healthz").status == 200)
        await raw.shutdown()
        await server.stop()
    }
}
