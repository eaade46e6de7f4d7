import CRDT
import Domain
import Foundation
import GRDB
import StoreSupport

/// Why refused changes cannot be re-issued from a directory. Nothing has changed when it is thrown.
public struct ReissueError: Error, CustomStringConvertible, Sendable {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Hashable, Sendable {
            case notAReplica = "not-a-replica"
            case sameReplica = "same-replica"
            case otherTenant = "other-tenant"
            case nothingRefused = "nothing-refused"
        }
        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// The directory holds no replica store.
        public static let notAReplica = Code(.notAReplica)
        /// The directory is this replica's own.
        public static let sameReplica = Code(.sameReplica)
        /// The old replica belongs to another tenant: its data must not cross over.
        public static let otherTenant = Code(.otherTenant)
        /// The old replica has no refused changes.
        public static let nothingRefused = Code(.nothingRefused)

        public var description: String { base.rawValue }
    }

    public let code: Code
    /// The `--from` directory.
    public let directory: String
    public let message: String
    /// For `other-tenant`, the old replica's tenant.
    public let detail: String
    public let underlying: (any Error)?

    init(
        _ code: Code, _ directory: String, _ message: String, detail: String = "", underlying: (any Error)? = nil
    ) {
        self.code = code
        self.directory = directory
        self.message = message
        self.detail = detail
        self.underlying = underlying
    }

    static func notAReplica(_ directory: String, underlying: (any Error)? = nil) -> ReissueError {
        ReissueError(.notAReplica, directory, "\(directory) holds no replica store", underlying: underlying)
    }

    public var description: String { underlying.map { "\(message) (\($0))" } ?? message }
}
