/// A store that cannot be opened or written, with what to do about it.
///
/// Carries a stable ``code``, a plain ``message`` that says what happened and how to recover,
/// and the underlying error (SQLite's, wrapped here so it does not leak into callers).
public struct StoreError: Error, CustomStringConvertible, Sendable {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Hashable, Sendable {
            case corrupt
            case newerSchema = "newer-schema"
            case notInitialized = "not-initialized"
            case alreadyInitialized = "already-initialized"
            case imageRefused = "image-refused"
            case diskFull = "disk-full"
            case notWritable = "not-writable"
            case changedElsewhere = "changed-elsewhere"
            case io
        }
        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// The file failed SQLite's integrity check or is not a database.
        public static let corrupt = Code(.corrupt)
        /// The file was written by a newer version of Kraliki Sync.
        public static let newerSchema = Code(.newerSchema)
        /// There is no replica in this directory yet.
        public static let notInitialized = Code(.notInitialized)
        /// There already is a replica in this directory.
        public static let alreadyInitialized = Code(.alreadyInitialized)
        /// A bootstrap image does not fit this replica (damaged, another tenant, another schema,
        /// or the replica already holds data); nothing was changed.
        public static let imageRefused = Code(.imageRefused)
        /// The disk holding the store has no room for a write. The write that met it changed
        /// nothing (SQLite rolls its transaction back); freeing space heals it.
        public static let diskFull = Code(.diskFull)
        /// The file cannot be opened for writing although it is not damaged: its file system is
        /// read-only (a disk remounted read-only after errors) or this user may not write there.
        public static let notWritable = Code(.notWritable)
        /// Another process (another `replica-cli`, a `sync --watch`) committed to the file since
        /// this store read it: what it holds in memory is out of date. The store reloads and the
        /// operation runs again (``LocalStore/write(wall:_:)``, the sync engine); callers see it
        /// only when that keeps happening.
        public static let changedElsewhere = Code(.changedElsewhere)
        /// Reading or writing failed (permissions, a failing disk, …).
        public static let io = Code(.io)

        public var description: String { base.rawValue }
    }

    public let code: Code
    public let message: String
    public let underlying: (any Error)?

    public init(_ code: Code, _ message: String, underlying: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.underlying = underlying
    }

    public var description: String {
        underlying.map { "\(message) (\($0))" } ?? message
    }
}
