import Logging
import ServiceLifecycle

/// Computes the gauges read from the store (``ServerRuntime/refreshStoreGauges()``) when the
/// server starts and then every `metricsRefreshSeconds`, so a `/metrics` scrape costs the same
/// whatever the tenants hold and whoever calls it.
struct StoreGaugesService: Service {
    let runtime: ServerRuntime

    func run() async throws {
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    try await runtime.refreshStoreGauges()
                } catch {
                    runtime.logger.warning("cannot compute the store gauges", metadata: ["error": "\(error)"])
                }
                try await Task.sleep(for: .seconds(runtime.config.metricsRefreshSeconds))
            }
        }
    }
}
