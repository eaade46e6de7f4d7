import Logging
import ServiceLifecycle

/// Keeps bootstrap images fresh beside the server: at start and then every
/// `imageIntervalSeconds`, writes a new image for each tenant whose image is missing or
/// `imageMinChanges` behind (see `BootstrapImages`). A failed refresh is logged and tried again
/// at the next interval: fresh replicas pull everything meanwhile, nothing else depends on it.
struct ImageService: Service {
    let runtime: ServerRuntime

    func run() async throws {
        let minChanges = UInt64(runtime.config.imageMinChanges)
        guard minChanges > 0 else {
            // A service that returns ends the whole server (the service group's rule): wait.
            try? await gracefulShutdown()
            return
        }
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    let built = try await BlockingWork.run { try runtime.refreshImages(minChanges: minChanges) }
                    for image in built {
                        runtime.logger.info(
                            "bootstrap image written",
                            metadata: [
                                "cursor": "\(image.cursor)", "bytes": "\(image.bytes)", "epoch": "\(image.epoch)",
                            ])
                    }
                } catch {
                    runtime.logger.warning("writing bootstrap images failed", metadata: ["error": "\(error)"])
                }
                try await Task.sleep(for: .seconds(runtime.config.imageIntervalSeconds))
            }
        }
    }
}
