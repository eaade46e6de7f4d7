import DomainTestSupport
import DrillSupport
import Foundation
import LocalStorage
import Replica
import StoreSupport
import SystemTestSupport
import Testing

/// Regression: a TLS handshake cut by the network was reported as "the server is not the one this
/// replica trusts; enrol again" (`untrusted-server`, which does not heal), so `replica-cli sync`
/// gave up with the wrong advice and `sync --watch` stopped for good. Found by drill 3's fault
/// proxy closing connections mid-response.
@Suite("Regression: a handshake cut by the network heals; another server's certificate does not")
struct HandshakeCutTests {
    @Test("cut handshakes are `unreachable` (heals); a different server's certificate is `untrusted-server`")
    func handshakeCut() async throws {
        let directory = TempDirectory("handshake-cut")
        let server = ServerProcess(data: directory.sub("data"))
        try await server.start()
        defer { server.kill() }
        // Every response cut after a random prefix: the first one is the server's TLS hello.
        let proxy = try await FaultProxy.start(upstreamPort: server.port, seed: 3, faults: .init(closeMidResponse: 1))
        let replica = try await DrillReplica.enrol(
            try await server.link(user: "petr", role: "field"), name: "petr", in: directory.sub("petr"))
        let cut = try DrillReplica(name: "petr", directory: directory.sub("petr"), server: proxy.url)
        // async-http-client retries a failed connection until its 10 s connect timeout, then
        // reports the last failure: each round takes about 10 s.
        var seen = [String]()
        for _ in 0..<2 {
            do {
                try await cut.sync()
                Issue.record("a sync through a proxy that cuts every response succeeded")
            } catch {
                #expect(RetryPolicy.canHeal(error), "\(error)")
                #expect((error as? SyncFailure)?.code != .untrustedServer, "\(error)")
                seen.append("\(error)")
            }
        }
        print("handshake cut: \(proxy.stats.midResponseCloses) responses cut; errors: \(seen)")
        #expect(proxy.stats.midResponseCloses >= 2)
        // The pin still holds: another server (its own generated certificate) is refused for good.
        let other = ServerProcess(data: directory.sub("other"))
        try await other.start()
        defer { other.kill() }
        let impostor = try DrillReplica(name: "petr", directory: directory.sub("petr"), server: other.url)
        do {
            try await impostor.sync()
            Issue.record("a replica synced with a server whose certificate it did not pin")
        } catch {
            #expect((error as? SyncFailure)?.code == .untrustedServer, "\(error)")
            #expect(!RetryPolicy.canHeal(error))
        }
        await cut.close()
        await impostor.close()
        await replica.close()
        await proxy.stop()
    }
}
