import ServiceLifecycle

/// Background work tied to the server's lifetime: device activity written and the store
/// probed for `/readyz` every 2 s; at graceful shutdown, live streams closed (so in-flight
/// requests can finish) and activity flushed.
struct HousekeepingService: Service {
    let runtime: ServerRuntime

    func run() async throws {
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try await Task.sleep(for: .seconds(2))
                do { try await runtime.flushActivity() } catch {
                    runtime.logger.warning("cannot record device activity", metadata: ["error": "\(error)"])
                }
                await runtime.probeStore()
            }
        }
        runtime.closeLiveStreams()
        try? await runtime.flushActivity()
    }
}
