import Dispatch

/// Runs blocking work (SQLite transactions and fsyncs, bootstrap images) on a dispatch queue
/// and waits for it without holding a thread of the NIO event loops or the cooperative pool.
enum BlockingWork {
    static func run<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(with: Result { try work() }) }
        }
    }
}
