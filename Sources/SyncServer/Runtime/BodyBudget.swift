import Synchronization

/// The request bodies the server holds at once, in bytes, across every connection: each request
/// with a body reserves its `Content-Length` (or the body limit when it does not say) before it
/// is read and gives it back when its answer is ready, so concurrent large pushes cannot
/// multiply memory past `limit`. A request that does not fit is answered 503 with Retry-After.
final class BodyBudget: Sendable {
    let limit: Int
    private let reserved = Mutex(0)

    init(limit: Int) { self.limit = limit }

    /// Reserves `bytes`; false when they do not fit now.
    func reserve(_ bytes: Int) -> Bool {
        reserved.withLock { reserved in
            guard reserved + bytes <= limit else { return false }
            reserved += bytes
            return true
        }
    }

    func give(_ bytes: Int) { reserved.withLock { $0 -= bytes } }

    /// Bytes reserved now.
    var inFlight: Int { reserved.withLock { $0 } }
}
