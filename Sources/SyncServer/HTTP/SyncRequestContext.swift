import Hummingbird
import NIOCore

/// The request context of every route: Hummingbird's core context, the client's address
/// (which the per-address enrolment limit keys on), when the request's channel closes, and the
/// device `DeviceAuthenticator` found for the bearer token (routes that need one run with a
/// ``DeviceRequestContext``, which holds it without an optional).
public struct SyncRequestContext: RequestContext, RemoteAddressRequestContext {
    public var coreContext: CoreRequestContextStorage
    public let remoteAddress: SocketAddress?
    /// Completes when the request's channel (its HTTP/2 stream) closes — a client that resets
    /// a live stream — so a stream that writes only now and then ends at once, not at its next
    /// write.
    let closed: EventLoopFuture<Void>
    /// Set by `DeviceAuthenticator` on the routes that need a device.
    var device: DeviceRecord?

    public init(source: Source) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
        closed = source.channel.closeFuture
    }

    /// The client's IP address as text (no port: a client opens connections from many ports),
    /// or `unknown`.
    var clientAddress: String { remoteAddress?.ipAddress ?? "unknown" }
}
