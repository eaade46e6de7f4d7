import AsyncHTTPClient
import Domain
import DomainTestSupport
import Foundation
import LocalStorage
import NIOCore
import NIOHTTP1
import NIOSSL
import Replica
import StoreSupport
import Testing

/// The real `sync-server` binary as a child process on a free loopback port (port 0, read
/// back from its "listening on" line), with its own data directory and an optional config.
/// Memory is read from /proc, so the drill measures the server alone, not the test process.
final class SyncServerProcess: @unchecked Sendable {
    let directory = TempDirectory("hostile-server")
    let process = Process()
    private(set) var port = 0
    let log: String

    var data: String { directory.sub("data") }
    var url: String { "https://127.0.0.1:\(port)" }
    var certificatePath: String { data + "/tls/server-cert.pem" }
    var pid: Int32 { process.processIdentifier }

    /// Starts the server with `config` (a JSON config file's content) and waits until it listens.
    init(config: String? = nil) async throws {
        log = directory.sub("server.log")
        FileManager.default.createFile(atPath: log, contents: nil)
        var arguments = ["serve", "--data", data, "--port", "0"]
        if let config {
            let file = directory.sub("config.json")
            try config.write(toFile: file, atomically: true, encoding: .utf8)
            arguments += ["--config", file]
        }
        process.executableURL = URL(fileURLWithPath: ChildProcess.builtProduct("sync-server"))
        process.arguments = arguments
        process.standardInput = FileHandle.nullDevice
        // stdout and stderr both to the log: a crash message must be found there.
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        // Generous: the machine is shared and a debug build starts slowly under load.
        for _ in 0..<1_200 {
            if let match = output.firstMatch(of: /listening on https:\/\/127\.0\.0\.1:(\d+)/) {
                port = Int(match.output.1)!
                return
            }
            guard process.isRunning else { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw DrillFailure("sync-server did not start: \(output)")
    }

    var output: String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }

    var isRunning: Bool { process.isRunning }

    /// The server's resident set size in KiB (VmRSS in /proc/<pid>/status).
    func residentKiB() throws -> Int {
        let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
            let kib = Int(line.split(separator: " ", omittingEmptySubsequences: true)[1])
        else { throw DrillFailure("no VmRSS in /proc/\(pid)/status") }
        return kib
    }

    /// An enrolment for `user` in `tenant` made by `sync-server enroll` (the operator's path).
    func enrolment(tenant: String, user: String, role: String) async throws -> EnrolmentLink {
        let result = try await ChildProcess.run(
            ChildProcess.builtProduct("sync-server"),
            [
                "enroll", "--data", data, "--port", "\(port)", "--tenant", tenant, "--user", user, "--role", role,
                "--json",
            ])
        let object = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
        guard let text = object?["enrolment"] as? String else {
            throw DrillFailure("sync-server enroll printed \(result)")
        }
        return try EnrolmentLink(parsing: text)
    }

    /// Stops the server with SIGTERM (graceful) and waits for it.
    func stop() {
        guard process.isRunning else { return }
        process.terminate()
        process.waitUntilExit()
    }

    deinit { stop() }
}

/// A drill's own failure (setup that did not work), with what was seen.
struct DrillFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Raw requests over HTTP/2 + TLS to a server given by URL and certificate file (RawClient in
/// ServerTestSupport is bound to an in-process RunningServer).
final class DrillClient: Sendable {
    let client: HTTPClient
    let base: String

    struct Answer: Sendable {
        let status: Int
        let headers: HTTPHeaders
        let body: Data
        var text: String { String(decoding: body, as: UTF8.self) }
        var json: [String: Any]? { (try? JSONSerialization.jsonObject(with: body)) as? [String: Any] }
        var isProblem: Bool { headers.first(name: "content-type") == "application/problem+json" }
    }

    init(url: String, certificatePath: String) throws {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(certificatePath))
        var configuration = HTTPClient.Configuration(tlsConfiguration: tls)
        configuration.httpVersion = .automatic
        client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        base = url
    }

    func send(
        _ method: HTTPMethod, _ path: String, token: String? = nil, contentType: String? = "application/json",
        body: [UInt8]? = nil
    ) async throws -> Answer {
        var request = HTTPClientRequest(url: base + path)
        request.method = method
        if let token { request.headers.add(name: "authorization", value: "Bearer \(token)") }
        if let contentType, body != nil { request.headers.add(name: "content-type", value: contentType) }
        if let body { request.body = .bytes(ByteBuffer(bytes: body)) }
        let response = try await client.execute(request, timeout: .seconds(60))
        let bytes = try await response.body.collect(upTo: 64 << 20)
        return Answer(status: Int(response.status.code), headers: response.headers, body: Data(bytes.readableBytesView))
    }

    func shutdown() async { try? await client.shutdown() }
}
