import AsyncHTTPClient
import Foundation
import NIOCore
import NIOPosix
import StoreSupport
import Testing

@testable import LocalStorage
@testable import Replica

/// What `sync` and `init` say when the server cannot be reached: a reason in plain words from
/// the network stack's own error values (their descriptions are what the mapping reads, so a
/// dependency that words them differently fails here, not in front of a user).
@Suite("network failure reasons")
struct NetworkReasonTests {
    @Test("the network stack's errors become a short reason; an unknown one keeps its text")
    func reasons() {
        let cases: [(any Error, String)] = [
            (IOError(errnoCode: ECONNREFUSED, reason: "connect"), "connection refused"),
            (IOError(errnoCode: EHOSTUNREACH, reason: "connect"), "no route to host"),
            (IOError(errnoCode: ENETUNREACH, reason: "connect"), "the network is unreachable"),
            (IOError(errnoCode: ECONNRESET, reason: "read"), "the connection was reset"),
            (IOError(errnoCode: ETIMEDOUT, reason: "connect"), "timed out connecting"),
            (HTTPClientError.connectTimeout, "timed out connecting"),
            (HTTPClientError.remoteConnectionClosed, "the server closed the connection"),
            (HTTPClientError.deadlineExceeded, "timed out"),
            (HTTPClientError.readTimeout, "timed out waiting for the server"),
        ]
        // (A failed name lookup, `SocketAddressError.UnknownHost`, cannot be made outside NIO; its
        // text "…UnknownHost: Name or service not known…" was checked by hand: "the host name is
        // not known".)
        for (error, reason) in cases {
            #expect(networkReason(error) == reason, "\(String(describing: error))")
        }
        struct Odd: Error, CustomStringConvertible { var description: String { "something odd" } }
        #expect(networkReason(Odd()) == "something odd")
    }

    @Test("a refused connection, for real: the message names the server and says why")
    func refused() async throws {
        // A port nothing listens on: bound, then closed.
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(host: "127.0.0.1", port: 0).get()
        let port = channel.localAddress!.port!
        try await channel.close()
        let server = "https://127.0.0.1:\(port)"
        let error = await #expect(throws: SyncFailure.self) { try await ServerProbe.check(server) }
        #expect(error?.code == .unreachable)
        #expect(error?.message == "\(server): connection refused", "\(String(describing: error))")
    }
}
