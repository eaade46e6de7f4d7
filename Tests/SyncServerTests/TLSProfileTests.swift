import DomainTestSupport
import Foundation
import ServerTestSupport
import SyncServer
import Testing

/// The server's TLS follows Mozilla's "intermediate" profile: TLS 1.2 and 1.3 only, and for
/// TLS 1.2 only ECDHE key exchange with AEAD ciphers. Checked with real handshakes by an
/// independent client, `openssl s_client`, offering only what must be refused (with OpenSSL's
/// own security level lowered so that the refusal is the server's, not the client's).
@Suite("TLS profile")
struct TLSProfileTests {
    /// The protocol and cipher the handshake agreed on, or nil when it failed.
    func handshake(_ port: Int, _ arguments: [String]) async throws -> String? {
        let output = try await ChildProcess.run(
            "/usr/bin/openssl", ["s_client", "-connect", "127.0.0.1:\(port)", "-brief"] + arguments)
        let text = output.stdout + output.stderr
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("Ciphersuite:") }) else { return nil }
        return String(line.dropFirst("Ciphersuite:".count)).trimmingCharacters(in: .whitespaces)
    }

    @Test("TLS 1.2/1.3 with ECDHE+AEAD are accepted; TLS 1.0/1.1, CBC and non-ECDHE suites are refused")
    func profile() async throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/openssl") else {
            Issue.record("openssl is not installed (.ci/run installs it)")
            return
        }
        let server = try await RunningServer.start()
        let lowered = "DEFAULT:@SECLEVEL=0"
        let accepted: [[String]] = [["-tls1_3"], ["-tls1_2"], ["-tls1_2", "-cipher", "ECDHE-ECDSA-CHACHA20-POLY1305"]]
        let refused: [[String]] = [
            ["-tls1", "-cipher", lowered], ["-tls1_1", "-cipher", lowered],
            ["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA384:@SECLEVEL=0"],  // CBC
            ["-tls1_2", "-cipher", "AES128-GCM-SHA256:AES256-GCM-SHA384:@SECLEVEL=0"],  // no forward secrecy
        ]
        for arguments in accepted {
            let suite = try await handshake(server.port, arguments)
            #expect(suite != nil, "refused \(arguments)")
            if let suite { #expect(suite.contains("GCM") || suite.contains("CHACHA20"), "\(arguments): \(suite)") }
        }
        for arguments in refused {
            let suite = try await handshake(server.port, arguments)
            #expect(suite == nil, "accepted \(arguments) with \(suite ?? "")")
        }
        await server.stop()
    }
}
