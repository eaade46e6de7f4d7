import Hummingbird
import Synchronization

/// The router's own route list (`Router.routes`), set once when the router is built, for what
/// the request middleware needs to know about routes other than the matched one: whether a
/// template is a registered one (the metrics' route label) and which methods a path answers
/// (a 405's `Allow`).
final class RouteTable: Sendable {
    private let state = Mutex<[(method: String, template: String)]>([])

    func set(_ routes: [Router<SyncRequestContext>.RouteDescription]) {
        state.withLock { $0 = routes.map { ($0.method.rawValue, $0.path.description) } }
    }

    /// The registered templates, `/v1/admin/devices/{id}/revoke` as the router names them.
    var templates: Set<String> { Set(state.withLock { $0.map(\.template) }) }

    /// The methods of the routes whose template matches `path`.
    func methods(matching path: String) -> [String] {
        let parts = path.split(separator: "/", omittingEmptySubsequences: true)
        return state.withLock { routes in
            routes.filter { route in
                let pattern = route.template.split(separator: "/", omittingEmptySubsequences: true)
                return pattern.count == parts.count && zip(pattern, parts).allSatisfy { $0.hasPrefix("{") || $0 == $1 }
            }
            .map(\.method)
        }
    }
}
