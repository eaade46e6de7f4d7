import Hummingbird

extension RouterGroup where Context == DeviceRequestContext {
    /// A group of device routes under one access rule (`DeviceAccessMiddleware`) whose request
    /// bodies are charged to the server-wide budget (`BodyBudgetMiddleware`).
    func routes(
        for requirement: DeviceAccessMiddleware.Requirement, cost: Double = 1, runtime: ServerRuntime
    ) -> RouterGroup<Context> {
        group()
            .add(middleware: DeviceAccessMiddleware(runtime: runtime, requirement: requirement, cost: cost))
            .add(middleware: BodyBudgetMiddleware(runtime: runtime, limit: runtime.config.limits.maxBodyBytes))
    }
}
