import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import HummingbirdHTTP2
import Logging
import NIOCore
import ServiceLifecycle
import StoreSupport

/// The running server: Hummingbird with HTTP/2 over TLS (ALPN h2, HTTP/1.1 fallback) or, when
/// asked for on loopback, cleartext HTTP/2; the router's controllers over a `ServerRuntime`;
/// structured JSON logs with a request ID; the background services; graceful shutdown (stop
/// accepting, finish in-flight requests, close live streams, flush device activity).
public struct SyncServerApp {
    public let runtime: ServerRuntime
    public let certificate: ServerCertificate?

    public init(runtime: ServerRuntime, certificate: ServerCertificate?) {
        self.runtime = runtime
        self.certificate = certificate
    }

    /// Every route, grouped by who may call it: open routes (health, readiness, metrics,
    /// enrolment), then the routes of an authenticated device, converted to a
    /// `DeviceRequestContext`, each controller declaring its routes' access rule.
    /// `router.routes` is the route list the OpenAPI and authorization tests read.
    public static func router(_ runtime: ServerRuntime) -> Router<SyncRequestContext> {
        let router = Router(context: SyncRequestContext.self)
        let table = RouteTable()
        router.add(middleware: RequestMiddleware(runtime: runtime, routes: table))
        HealthController(runtime: runtime).addRoutes(to: router.group())
        let v1 = router.group("v1")
        EnrolmentController(runtime: runtime).addRoutes(to: v1)
        let devices = v1.group()
            .add(middleware: DeviceAuthenticator(runtime: runtime))
            .group(context: DeviceRequestContext.self)
        SyncController(runtime: runtime).addRoutes(to: devices)
        LiveController(runtime: runtime).addRoutes(to: devices)
        ImageController(runtime: runtime).addRoutes(to: devices)
        AdminController(runtime: runtime).addRoutes(to: devices.group("admin"))
        table.set(router.routes)
        return router
    }

    /// HTTP/2 connection lifetimes. A connection with no open stream for `idleConnectionSeconds`
    /// (30 s) gets GOAWAY and is closed, so idle connections cannot pile up (a replica reconnects
    /// on its next request; a live stream is an open stream, so a follower is never idle); an
    /// HTTP/1.1 connection (ALPN fallback) with no request in progress as long is closed.
    /// NIOHTTP2's own defaults already close rapid-reset, PING/SETTINGS-flood and
    /// CONTINUATION-flood connections (HTTP2AbuseDrillTests checks both); `ConnectionGuard`
    /// closes what they leave open.
    static func http2Connections(_ limits: ServerConfig.Limits) -> HTTP2ChannelConfiguration {
        let idle = Duration.milliseconds(Int64(limits.idleConnectionSeconds * 1000))
        return HTTP2ChannelConfiguration(
            idleTimeout: idle, gracefulCloseTimeout: gracefulClose,
            streamConfiguration: HTTP1Channel.Configuration(idleTimeout: TimeAmount(idle)))
    }

    static let gracefulClose = Duration.seconds(10)

    static func connectionLimits(_ limits: ServerConfig.Limits) -> ConnectionLimits {
        ConnectionLimits(
            handshake: .milliseconds(Int64(limits.tlsHandshakeSeconds * 1000)), afterGoAway: gracefulClose + .seconds(5)
        )
    }

    /// Builds the Hummingbird application. `onRunning` gets the bound port (useful with port 0).
    public func application(
        onRunning: @escaping @Sendable (Int) async -> Void = { _ in }
    )
        throws -> some ApplicationProtocol
    {
        let router = Self.router(runtime)
        let limits = runtime.config.limits
        let connections = Self.http2Connections(limits)
        let guardLimits = Self.connectionLimits(limits)
        let census = runtime.metrics.connections
        let server: HTTPServerBuilder
        if runtime.config.cleartextHTTP2 {
            server = HTTPServerBuilder { responder in
                GuardedChannel(
                    inner: HTTP2Channel(responder: responder, configuration: connections), limits: guardLimits,
                    census: census)
            }
        } else {
            guard let certificate else {
                throw ServerConfig.Problem(setting: "tlsCertificate", message: "no certificate")
            }
            let tls = try certificate.tlsConfiguration()
            server = HTTPServerBuilder { responder in
                GuardedChannel(
                    inner: try HTTP2UpgradeChannel(
                        tlsConfiguration: tls, configuration: connections, responder: responder),
                    limits: guardLimits, census: census)
            }
        }
        return Application(
            router: router, server: server,
            configuration: ApplicationConfiguration(
                address: .hostname(runtime.config.host, port: runtime.config.port), serverName: "kraliki-sync",
                // At the cap the server stops accepting; new clients wait in the listen backlog
                // (rather than being accepted and cut off) until a connection closes.
                availableConnectionsDelegate: MaximumAvailableConnections(limits.maxConnections)),
            services: [
                HousekeepingService(runtime: runtime), CollectorService(runtime: runtime),
                ImageService(runtime: runtime), StoreGaugesService(runtime: runtime),
            ],
            onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? 0) },
            logger: runtime.logger)
    }
}
