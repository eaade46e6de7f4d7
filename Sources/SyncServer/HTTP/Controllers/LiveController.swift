import HTTPTypes
import Hummingbird
import NIOCore
import ServiceLifecycle

/// `GET /v1/sync/live`: server-sent events — `event: changes` with the tenant's newest sequence
/// whenever a push commits, and a comment every 15 s so proxies and clients see the stream alive.
/// A device holds a few streams at most, a tenant a bounded number (`LiveStreamSlots`).
struct LiveController {
    let runtime: ServerRuntime

    func addRoutes(to group: RouterGroup<DeviceRequestContext>) {
        group.routes(for: .anyDevice, runtime: runtime).get("sync/live", use: live)
    }

    @Sendable func live(_ request: Request, _ context: DeviceRequestContext) throws -> Response {
        let device = context.device
        let slot: LiveStreamSlots.Slot
        do {
            slot = try runtime.liveSlots.take(device: device.id, tenant: device.tenant)
        } catch .device(let open) {
            throw Problem(
                .tooManyRequests, "too-many-streams", "Too many live streams",
                "this device has \(open) live streams open, the most one device may hold; close one first",
                retryAfter: 15)
        } catch .tenant(let open) {
            throw Problem(
                .tooManyRequests, "too-many-streams", "Too many live streams",
                "this tenant has \(open) live streams open, the most one tenant may hold; retry later",
                retryAfter: 15)
        }
        let notifier = runtime.notifier
        let metrics = runtime.metrics
        let store = runtime.store
        let closed = context.closed
        var headers = HTTPFields()
        headers[.contentType] = "text/event-stream"
        headers[.cacheControl] = "no-store"
        let revoked = runtime.devices
        let body = ResponseBody { writer in
            // One stream per follower carries both the tenant's new sequences and the heartbeat
            // (`ChangeNotifier.heartbeat`), so an event costs one task wake-up, not two.
            let (events, sink) = notifier.subscribe(tenant: device.tenant)
            // A client that went away ends the stream now (and gives back its slot), not at the
            // next event or heartbeat.
            closed.whenComplete { _ in sink.finish() }
            let heartbeat = Task {
                while !Task.isCancelled {
                    try? await Task.sleep(for: .seconds(15))
                    sink.yield(ChangeNotifier.heartbeat)
                }
            }
            metrics.liveStreamsOpen.increment()
            defer {
                heartbeat.cancel()
                sink.finish()
                metrics.liveStreamsOpen.decrement()
                slot.release()
            }
            let epoch = (try? await store.epoch(of: device.tenant).description) ?? ""
            let first = (try? await store.sequence(of: device.tenant)) ?? 0
            try await writer.write(ByteBuffer(string: Self.event(sequence: first, epoch: epoch)))
            // The server's graceful shutdown waits for in-flight requests: end the stream then.
            try await withGracefulShutdownHandler {
                for await sequence in events {
                    if sequence == ChangeNotifier.heartbeat {
                        try await writer.write(ByteBuffer(string: ": keep-alive\n\n"))
                        // Revoked by another process (or before this stream): noticed here.
                        if (try? await store.isRevoked(device: device.id)) ?? true { break }
                    } else {
                        // Revoked through this server: noticed at the next event.
                        if revoked.wasRevoked(device.id) { break }
                        try await writer.write(ByteBuffer(string: Self.event(sequence: sequence, epoch: epoch)))
                    }
                }
            } onGracefulShutdown: {
                sink.finish()
            }
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: headers, body: body)
    }

    static func event(sequence: UInt64, epoch: String) -> String {
        "event: changes\ndata: {\"epoch\":\"\(epoch)\",\"sequence\":\(sequence)}\n\n"
    }
}
