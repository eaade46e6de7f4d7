import Foundation
import LocalStorage
import StoreSupport
import Synchronization

/// A transport that counts what passes through another one, for progress output. Safe to use
/// from two tasks at once (the engine fetches the next pull batch while it applies one).
public final class CountingTransport: ConcurrentSyncTransport, ImageSyncTransport {
    public let base: any ConcurrentSyncTransport
    private let counts = Mutex((requests: 0, bytes: 0))
    let onExchange: @Sendable (_ requests: Int, _ bytes: Int) -> Void

    public init(
        _ base: any ConcurrentSyncTransport,
        onExchange: @escaping @Sendable (_ requests: Int, _ bytes: Int) -> Void = {
            _, _ in
        }
    ) {
        self.base = base
        self.onExchange = onExchange
    }

    public var requests: Int { counts.withLock { $0.requests } }
    public var bytes: Int { counts.withLock { $0.bytes } }

    public nonisolated(nonsending) func push(_ batch: [UInt8]) async throws -> [UInt8] {
        let answer = try await base.push(batch)
        record(batch.count + answer.count)
        return answer
    }

    public nonisolated(nonsending) func pull(_ request: [UInt8]) async throws -> [UInt8] {
        let answer = try await base.pull(request)
        record(request.count + answer.count)
        return answer
    }

    /// Forwards to the base transport when it can fetch images; counts the image's bytes.
    public nonisolated(nonsending) func downloadImage(to path: String) async throws -> ImageDownload {
        guard let images = base as? any ImageSyncTransport else { return .unavailable }
        let download = try await images.downloadImage(to: path)
        if download != .unavailable {
            record((try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0)
        }
        return download
    }

    private func record(_ count: Int) {
        let now = counts.withLock { counts in
            counts.requests += 1
            counts.bytes += count
            return counts
        }
        onExchange(now.requests, now.bytes)
    }
}
