import CRDT
import Domain
import Foundation
import GRDB
import GRDBSQLite
import StoreSupport

/// What writing one entity needs besides the entity and the change to it: its encoded state,
/// the stamp of the newest write the change brings, and how its row was before. A sync step's
/// rows are computed where the step is prepared (`CommitBase.prepare`), on the other core: the
/// writer is the apply's critical path, and in a profile a third of its time was
/// this work (two indexed-column comparisons, the newest stamp, a lookup of the state before).
struct PreparedRow: Sendable {
    /// The entity's ID (bound as its text, `EntityID.text`, without a string: `SQLiteParameter`).
    var id: EntityID
    /// The entity's encoded state (`entityBlob`).
    var blob: [UInt8]
    /// The stamp of the newest write in the change (`updated_hlc` becomes at least its text).
    var newestStamp: StampText
    /// The entity had no row before the change: it has no child rows to delete.
    var isNew: Bool
    /// The values the table's indexes hold stay as they were: the narrow update of the row
    /// (the statements `…Unlisted`) suffices.
    var keepsIndexedColumns: Bool

    /// The row of `entity`, which `delta` changed from `previous`. `knowsPrevious` false: the
    /// state before is unknown, so the entity is treated as existing and its row written whole.
    /// `newest` is `delta.newestDot`, when the caller has it already.
    init<E: RowEntity>(
        _ id: EntityID, _ entity: E, delta: E, newest: Dot?? = nil, previous: E?, knowsPrevious: Bool
    ) {
        self.id = id
        blob = entityBlob(entity)
        newestStamp = StampText(stamp: (newest ?? delta.newestDot).map { HLC(time: $0.counter, replica: $0.replica) })
        isNew = knowsPrevious && previous == nil
        keepsIndexedColumns = previous.map { E.keepsIndexedColumns(from: $0, to: entity, delta: delta) } ?? false
    }
}
