import StoreSupport

/// Why a pull was not answered.
public enum PullFailure: Error, CustomStringConvertible, Sendable {
    /// The store failed.
    case store(StoreError)
    /// The cursor is older than a collected tombstone: the replica may have missed a
    /// deletion whose record is gone. It must push its outbox, then re-bootstrap (pull from 0
    /// into an empty state).
    case staleCursor(cursor: UInt64, collectedThrough: UInt64)

    public var description: String {
        switch self {
        case .store(let error): "\(error)"
        case .staleCursor(let cursor, let collected):
            "cursor \(cursor) is older than the tombstones collected through sequence \(collected)"
        }
    }
}
