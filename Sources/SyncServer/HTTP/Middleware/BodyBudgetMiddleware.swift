import Hummingbird

/// Reserves a POST's body from the server-wide budget (`BodyBudget`) before its handler reads
/// it, and gives it back when the answer is ready: a body is held (and decoded) while the
/// handler runs. `limit` is the group's body limit, the most a request is charged when it does
/// not say its length; 503 `busy` with Retry-After when it does not fit.
struct BodyBudgetMiddleware<Context: RequestContext>: RouterMiddleware {
    let runtime: ServerRuntime
    let limit: Int

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    )
        async throws -> Response
    {
        guard request.method == .post else { return try await next(request, context) }
        let bytes = min(limit, max(0, request.headers[.contentLength].flatMap(Int.init) ?? limit))
        let bodies = runtime.bodies
        guard bodies.reserve(bytes) else {
            runtime.metrics.bodiesRefused.increment()
            throw Problem.busy(
                "the server is reading as many request bodies as it holds at once (\(bodies.limit) bytes); retry")
        }
        defer { bodies.give(bytes) }
        return try await next(request, context)
    }
}
