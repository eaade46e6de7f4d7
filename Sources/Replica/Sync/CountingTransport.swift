/// A transport that counts what passes through another one, for progress output.
public final class CountingTransport: SyncTransport {
    public let base: any SyncTransport
    public private(set) var requests = 0
    public private(set) var bytes = 0
    let onExchange: (CountingTransport) -> Void

    public init(_ base: any SyncTransport, onExchange: @escaping (CountingTransport) -> Void = { _ in }) {
        self.base = base
        self.onExchange = onExchange
    }

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

    private func record(_ count: Int) {
        requests += 1
        bytes += count
        onExchange(self)
    }
}
