import Logging
import ServiceLifecycle

/// Runs garbage collection (tombstones past the retention, superseded log entries) when the
/// server starts and then every `collectionIntervalSeconds`, beside the server, until shutdown.
/// A failed run is logged and tried again at the next interval: nothing depends on it but disk
/// space.
struct CollectorService: Service {
    let runtime: ServerRuntime

    func run() async throws {
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    let collection = try await runtime.collectGarbage()
                    if collection.tombstones + collection.logEntries > 0 {
                        runtime.logger.info("collected", metadata: ["result": "\(collection)"])
                    }
                } catch {
                    runtime.logger.warning("garbage collection failed", metadata: ["error": "\(error)"])
                }
                try await Task.sleep(for: .seconds(runtime.config.collectionIntervalSeconds))
            }
        }
    }
}
