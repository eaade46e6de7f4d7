import Foundation
import LocalStorage
import NIOCore
import NIOPosix
import StoreSupport

/// A quick TCP check that a server accepts connections, so a command can say "unreachable" in
/// a moment instead of waiting out the HTTP client's connect retries (about 10 s per request).
public enum ServerProbe {
    /// Throws ``SyncFailure`` `unreachable` when nothing accepts a TCP connection at `server`'s
    /// host and port within `timeout`.
    public static func check(_ server: String, timeout: TimeAmount = .seconds(3)) async throws {
        guard let url = URL(string: server), let host = url.host else {
            throw SyncFailure(.notEnrolled, "the server URL \(server) is not valid; enrol again")
        }
        let port = url.port ?? (url.scheme == "http" ? 80 : 443)
        do {
            let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connectTimeout(timeout)
                .connect(host: host, port: port).get()
            try? await channel.close()
        } catch {
            throw SyncFailure(.unreachable, "\(server): \(networkReason(error))")
        }
    }
}
