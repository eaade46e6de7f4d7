import Hummingbird
import Synchronization

/// The router's own route list (`Router.routes`), set once when the router is built, for what
/// the request middleware needs to know about routes other than the matched one: whether a
/// template is a registered one (the metrics' route label) and which methods a path answers
/// (a 405's `Allow`).
final class RouteTable: Sendable {
    private let state = Mutex<(routes: [(method: String, template: String)], templates: Set<String>)>(([], []))

    func set(_ routes: [Router<SyncRequestContext>.RouteDescription]) {
        let list = routes.map { (method: $0.method.rawValue, template: $0.path.description) }
        state.withLock { $0 = (list, Set(list.map(\.template))) }
    }

    /// Whether `template` (`/v1/admin/devices/{id}/revoke`, as the router names it) is a
    /// registered route's.
    func isRegistered(_ template: String) -> Bool { state.withLock { $0.templates.contains(template) } }

    /// The methods of the routes whose template matches `path`.
    func methods(matching path: String) -> [String] {
        let parts = path.split(separator: "/", omittingEmptySubsequences: true)
        return state.withLock { state in
            state.routes.filter { route in
                let pattern = route.template.split(separator: "/", omittingEmptySubsequences: true)
                return pattern.count == parts.count && zip(pattern, parts).allSatisfy { $0.hasPrefix("{") || $0 == $1 }
            }
            .map(\.method)
        }
    }
}
