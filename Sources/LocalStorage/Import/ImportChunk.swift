import CRDT
import Domain
import Foundation
import GRDB
import StoreSupport

/// What the import's builder hands the writer: a chunk of new contacts, or the first bad draft.
struct ImportChunk: Sendable {
    /// The statements that write the contacts, planned (their encoded states, their columns, …).
    let writes: RowWrites
    /// The contacts' audit rows: kind and ID (bound as its text without a string: `SQLiteParameter`).
    let audited: [(kind: EntityKind, id: EntityID)]
    /// The chunk as one outbox change, encoded.
    let outboxChange: Data
    /// The newest stamp in the chunk.
    let last: HLC
}
