import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import HummingbirdHTTP2
import Logging
import NIOCore
import Replica
import ServiceLifecycle

/// The running server: Hummingbird with HTTP/2 over TLS (ALPN h2, HTTP/1.1 fallback) or, when
/// asked for on loopback, cleartext HTTP/2; the routes of `SyncService`; structured JSON logs
/// with a request ID; graceful shutdown (stop accepting, finish in-flight requests, close live
/// streams, flush device activity).
public struct SyncServerApp {
    public let service: SyncService
    public let certificate: ServerCertificate?

    public init(service: SyncService, certificate: ServerCertificate?) {
        self.service = service
        self.certificate = certificate
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
        let router = Router(context: SyncRequestContext.self)
        router.add(middleware: RequestMiddleware(service: service))
        for route in service.routes {
            router.on(RouterPath(route.path), method: route.method) { [service] request, context in
                try await service.run(route, request, context)
            }
        }
        let limits = service.config.limits
        let connections = Self.http2Connections(limits)
        let guardLimits = Self.connectionLimits(limits)
        let census = service.metrics.connections
        let server: HTTPServerBuilder
        if service.config.cleartextHTTP2 {
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
                address: .hostname(service.config.host, port: service.config.port), serverName: "kraliki-sync",
                // At the cap the server stops accepting; new clients wait in the listen backlog
                // (rather than being accepted and cut off) until a connection closes.
                availableConnectionsDelegate: MaximumAvailableConnections(limits.maxConnections)),
            services: [
                HousekeepingService(service: service), CollectorService(service: service),
                ImageService(service: service), StoreGaugesService(service: service),
            ],
            onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? 0) },
            logger: service.logger)
    }
}

/// Background work tied to the server's lifetime: device activity written and the store
/// probed for `/readyz` every 2 s; at graceful shutdown, live streams closed (so in-flight
/// requests can finish) and activity flushed.
struct HousekeepingService: Service {
    let service: SyncService

    func run() async throws {
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try await Task.sleep(for: .seconds(2))
                do { try service.flushActivity() } catch {
                    service.logger.warning("cannot record device activity", metadata: ["error": "\(error)"])
                }
                // Off the cooperative pool: it waits for the writer lock behind group commits.
                try? await SyncService.offload { service.probeStore() }
            }
        }
        service.closeLiveStreams()
        try? service.flushActivity()
    }
}

/// Times and logs every request, counts it in the metrics by route template, and turns every
/// error into an RFC 9457 problem document (a route that does not exist too).
struct RequestMiddleware: RouterMiddleware {
    typealias Context = SyncRequestContext
    let service: SyncService
    /// The route table's templates as the router names them (`context.endpointPath`).
    let templates: Set<String>

    init(service: SyncService) {
        self.service = service
        templates = Set(service.routes.map { RouterPath($0.path).description })
    }

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws
        -> Response
    {
        let start = ContinuousClock.now
        var response: Response
        do {
            response = try await next(request, context)
        } catch let problem as Problem {
            response = try problem.response(from: request, context: context)
        } catch let error as HTTPError {
            response = try problem(for: error, request).response(from: request, context: context)
            if response.status == .methodNotAllowed {
                let methods = service.routes.filter { RoutePattern.matches($0.path, request.uri.path) }.map(
                    \.method.rawValue)
                response.headers[.allow] = methods.joined(separator: ", ")
            }
        } catch let error as StoreError {
            // The server's own storage failed: the client did nothing wrong and may retry.
            service.logger.error(
                "store failure",
                metadata: ["request": "\(context.id)", "path": "\(request.uri.path)", "error": "\(error)"])
            response = try Problem.unavailable("the server's store failed on this request; nothing was changed — retry")
                .response(from: request, context: context)
        } catch {
            service.logger.error(
                "request failed",
                metadata: ["request": "\(context.id)", "path": "\(request.uri.path)", "error": "\(error)"])
            response = try Problem.internalError(
                "the server failed on this request (id \(context.id)); it changed nothing"
            )
            .response(from: request, context: context)
        }
        let duration = ContinuousClock.now - start
        // The router sets the matched route's template; anything else is one value (a label a
        // caller could choose grows /metrics without bound, see `ServerMetrics.observe`).
        let route = context.endpointPath.flatMap { templates.contains($0) ? $0 : nil } ?? "unmatched"
        service.metrics.observe(
            route: route, method: request.method.rawValue, status: response.status.code, duration: duration)
        service.logger.info(
            "request",
            metadata: [
                "request": "\(context.id)", "method": "\(request.method.rawValue)", "route": "\(route)",
                "status": "\(response.status.code)",
                "ms": "\(Double(duration.components.attoseconds) / 1e15 + Double(duration.components.seconds) * 1000)",
            ])
        response.headers[HTTPField.Name("X-Request-Id")!] = context.id
        return response
    }

    /// Hummingbird's own errors (no route, body too large …) as problems.
    private func problem(for error: HTTPError, _ request: Request) -> Problem {
        switch error.status {
        case .notFound:
            let path = request.uri.path
            let methods = service.routes.filter { RoutePattern.matches($0.path, path) }.map(\.method.rawValue)
            if !methods.isEmpty {
                return Problem.methodNotAllowed(
                    "\(path) answers \(methods.joined(separator: ", ")), not \(request.method.rawValue)")
            }
            return Problem.notFound("there is no route \(path); see docs/api/openapi.yaml")
        case .contentTooLarge: return Problem.tooLarge(error.body ?? "the body is too large")
        default:
            let status = error.status.code
            if (400..<500).contains(status) {
                return Problem(
                    error.status, "bad-request", error.status.reasonPhrase, error.body ?? error.status.reasonPhrase)
            }
            return Problem.internalError(error.body ?? "the server failed")
        }
    }
}

/// Matches a concrete path against a route template with `:name` segments.
enum RoutePattern {
    static func matches(_ template: String, _ path: String) -> Bool {
        let pattern = template.split(separator: "/", omittingEmptySubsequences: true)
        let parts = path.split(separator: "/", omittingEmptySubsequences: true)
        guard pattern.count == parts.count else { return false }
        return zip(pattern, parts).allSatisfy { $0.hasPrefix(":") || $0 == $1 }
    }
}
