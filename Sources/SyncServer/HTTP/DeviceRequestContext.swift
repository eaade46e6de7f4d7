import Hummingbird
import NIOCore

/// The context of the routes a device calls: everything ``SyncRequestContext`` has, and the
/// authenticated, unrevoked device. The router group that needs a device converts to it after
/// `DeviceAuthenticator` ran, so a handler reads `context.device` and never unwraps.
public struct DeviceRequestContext: ChildRequestContext {
    public var coreContext: CoreRequestContextStorage
    public let device: DeviceRecord
    /// See ``SyncRequestContext/closed``.
    let closed: EventLoopFuture<Void>

    public init(context: SyncRequestContext) throws {
        // DeviceAuthenticator runs first on every group that converts to this context; a group
        // built without it fails closed rather than serving a stranger.
        guard let device = context.device else {
            throw Problem.unauthorized("send the device token as `Authorization: Bearer <token>`")
        }
        coreContext = context.coreContext
        self.device = device
        closed = context.closed
    }
}
