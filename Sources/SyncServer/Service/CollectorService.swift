import Logging
import ServiceLifecycle

/// Runs garbage collection (tombstones past the retention, superseded log entries) when the
/// server starts and then every `collectionIntervalSeconds`, beside the server, until shutdown.
/// A failed run is logged and tried again at the next interval: nothing depends on it but disk
/// space.
struct CollectorService: Service {
    let service: SyncService

    func run() async throws {
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    let collection = try await SyncService.offload { try service.collectGarbage() }
                    if collection.tombstones + collection.logEntries > 0 {
                        service.logger.info("collected", metadata: ["result": "\(collection)"])
                    }
                } catch {
                    service.logger.warning("garbage collection failed", metadata: ["error": "\(error)"])
                }
                try await Task.sleep(for: .seconds(service.config.collectionIntervalSeconds))
            }
        }
    }
}
