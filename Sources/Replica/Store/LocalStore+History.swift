import CRDT
import Domain
import Foundation
import GRDB

/// One entry of an entity's audit trail on this replica.
public struct HistoryEntry: Codable, Equatable, Sendable {
    /// When, ISO 8601 UTC (the HLC time of the change).
    public let at: String
    public let user: String
    public let device: String
    /// `write` (made here), `import`, or `pull` (received from the server).
    public let action: String
}

/// A field's current value and who wrote it.
public struct FieldAuthorship: Codable, Equatable, Sendable {
    public let field: String
    public let value: String
    public let user: String
    public let device: String
    public let at: String
}

/// What `replica-cli history ID` shows.
public struct EntityHistory: Codable, Equatable, Sendable {
    public let id: String
    public let kind: String
    /// Every change this replica recorded, oldest first.
    public let changes: [HistoryEntry]
    /// The live value of every field, by time: the last writer of each value, from any replica.
    public let fields: [FieldAuthorship]
}

extension LocalStore {
    /// An entity's audit rows, by kind and ID: both columns of `audit_by_entity`. On the ID alone
    /// SQLite scanned the whole trail (100,000 rows and more after an initial sync).
    static let historySQL =
        "SELECT at_hlc, user, device, action FROM audit WHERE entity_kind = ? AND entity_id = ? ORDER BY seq"

    /// The audit trail of entity `id` on this replica, with who wrote its current values.
    public func history(of id: EntityID) throws(StoreError) -> EntityHistory? {
        guard let kind = state.kind(of: id) else { return nil }
        let changes: [HistoryEntry] = try Self.wrap("reading the audit trail of \(path)") {
            try database.read { db in
                try Row.fetchAll(
                    db, sql: Self.historySQL, arguments: [kind.rawValue, id.text]
                ).map { row in
                    let stamp = HLC(text: row["at_hlc"] as String)
                    return HistoryEntry(
                        at: TimeText.utc(Int64(stamp?.physical ?? 0)), user: row["user"], device: row["device"],
                        action: row["action"])
                }
            }
        }
        let events: [FieldEvent]
        let user: (ReplicaID) -> String
        switch kind {
        case .contact:
            let c = state.contacts[id]!
            user = c.user(of:)
            events =
                c.lifecycle.liveEvents(field: "lifecycle") + c.name.liveEvents(field: "name")
                + c.company.liveEvents(field: "company") + c.title.liveEvents(field: "title")
                + c.owner.liveEvents(field: "owner") + c.status.liveEvents(field: "status")
                + c.address.liveEvents(field: "address") + c.customFields.liveEvents(field: "field")
                + c.phones.liveEvents(field: "phones") + c.emails.liveEvents(field: "emails")
                + c.tags.liveEvents(field: "tags")
        case .note:
            let n = state.notes[id]!
            user = n.user(of:)
            events =
                n.lifecycle.liveEvents(field: "lifecycle") + n.contact.liveEvents(field: "contact")
                + n.callTime.liveEvents(field: "call-time") + n.duration.liveEvents(field: "duration")
                + n.direction.liveEvents(field: "direction") + n.outcome.liveEvents(field: "outcome")
                + n.tags.liveEvents(field: "tags") + n.body.liveEvents(field: "body")
        case .schedule:
            let e = state.schedule[id]!
            user = e.user(of:)
            events =
                e.lifecycle.liveEvents(field: "lifecycle") + e.entryKind.liveEvents(field: "kind")
                + e.title.liveEvents(field: "title") + e.interval.liveEvents(field: "interval")
                + e.assignees.liveEvents(field: "assignees") + e.contact.liveEvents(field: "contact")
                + e.location.liveEvents(field: "location") + e.status.liveEvents(field: "status")
        }
        let fields = events.sorted { ($0.stamp, $0.field) < ($1.stamp, $1.field) }.map { event in
            FieldAuthorship(
                field: event.field, value: event.value, user: user(event.stamp.replica),
                device: event.stamp.replica.hex,
                at: TimeText.utc(Int64(event.stamp.physical)))
        }
        return EntityHistory(id: id.text, kind: kind.rawValue, changes: changes, fields: fields)
    }
}
