import HTTPTypes
import Hummingbird
import StoreSupport

/// Times and logs every request, counts it in the metrics by route template, and turns every
/// error into an RFC 9457 problem document (a route that does not exist too).
struct RequestMiddleware: RouterMiddleware {
    typealias Context = SyncRequestContext
    let runtime: ServerRuntime
    /// The router's routes, for the metrics' route label and the methods a 405 allows.
    let routes: RouteTable

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
                response.headers[.allow] = routes.methods(matching: request.uri.path).joined(separator: ", ")
            }
        } catch let error as StoreError {
            // The server's own storage failed: the client did nothing wrong and may retry.
            runtime.logger.error(
                "store failure",
                metadata: ["request": "\(context.id)", "path": "\(request.uri.path)", "error": "\(error)"])
            response = try Problem.unavailable("the server's store failed on this request; nothing was changed — retry")
                .response(from: request, context: context)
        } catch {
            runtime.logger.error(
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
        let route = context.endpointPath.flatMap { routes.isRegistered($0) ? $0 : nil } ?? "unmatched"
        runtime.metrics.observe(
            route: route, method: request.method.rawValue, status: response.status.code, duration: duration)
        runtime.logger.info(
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
            let methods = routes.methods(matching: path)
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
