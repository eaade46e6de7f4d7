import CRDT
import CRDTTestSupport
import Domain
import Foundation
import LocalStorage
import Replica
import StoreSupport

/// A unique token a workload writes into a record (`mk-` and 16 hex digits), so the drill can
/// find each write afterwards and count how many records carry it.
public struct Marker: Hashable, Sendable, Comparable, CustomStringConvertible {
    public let text: String

    public init(_ random: inout SeededRandom) {
        text = "mk-" + String(random.next(), radix: 16).leftPadded(to: 16)
    }

    public init(text: String) { self.text = text }

    public static func < (lhs: Marker, rhs: Marker) -> Bool { lhs.text < rhs.text }

    public var description: String { text }

    /// The markers inside `text`.
    public static func all(in text: String) -> [Marker] {
        text.matches(of: /mk-[0-9a-f]{16}/).map { Marker(text: String($0.output)) }
    }
}

extension String {
    fileprivate func leftPadded(to length: Int) -> String {
        count >= length ? self : String(repeating: "0", count: length - count) + self
    }
}

/// Every write a drill's workload made and the store confirmed (committed locally), by marker.
/// Each one must end up in exactly one record on every replica and on the server.
public struct WriteLedger: Sendable {
    public enum Kind: String, Sendable {
        case contact, note, scheduleEntry, tag
    }

    public private(set) var kindByMarker: [Marker: Kind] = [:]
    /// Markers whose push the server acknowledged (a sync that started after the write succeeded).
    public private(set) var acknowledged: Set<Marker> = []

    public init() {}

    public var count: Int { kindByMarker.count }

    public mutating func record(_ marker: Marker, _ kind: Kind) {
        precondition(kindByMarker[marker] == nil, "marker \(marker) written twice")
        kindByMarker[marker] = kind
    }

    public mutating func acknowledge(_ markers: some Sequence<Marker>) { acknowledged.formUnion(markers) }

    public mutating func merge(_ other: WriteLedger) {
        kindByMarker.merge(other.kindByMarker) { first, _ in first }
        acknowledged.formUnion(other.acknowledged)
    }
}

/// Seeded random edits over contacts, notes and schedules on one replica's store: creates carry
/// a new marker; edits add a marked tag to a contact this replica created, rewrite a note's body
/// (keeping its marker), or move or complete a schedule entry. Every write is one committed
/// local transaction; the ledger records its marker only after the commit.
public struct Workload {
    public var random: SeededRandom
    public private(set) var ledger = WriteLedger()
    /// Markers written since the last ``markSynced()``: acknowledged when a sync completes.
    public private(set) var unsynced: [Marker] = []
    private var ownContacts: [EntityID] = []
    public private(set) var writes = 0

    public init(seed: UInt64) { random = SeededRandom(seed: seed) }

    /// Makes one random write to `store`; returns its marker when it has one.
    @discardableResult
    public mutating func step(_ store: LocalStore, wall: UInt64 = SyncEngine.systemWall()) throws -> Marker? {
        let marker = Marker(&random)
        let roll = random.int(0...99)
        let state = store.state
        let activeContacts = ownContacts.filter { state.contact($0)?.isActive == true }
        var kind: WriteLedger.Kind?
        switch roll {
        case 0..<25,
            _ where activeContacts.isEmpty:
            let draft = ContactDraft(
                name: "Drill \(marker)", company: random.chance(0.5) ? "Acme \(random.int(1...9))" : nil,
                phones: random.chance(0.3)
                    ? ["+420 6\(random.int(10...99)) \(random.int(100...999)) \(random.int(100...999))"] : [],
                tags: ["drill"])
            let delta = try store.write(wall: wall) { state, context throws(ValidationError) in
                try state.createContact(draft, context)
            }
            if let id = delta.contacts.keys.first { ownContacts.append(id) }
            kind = .contact
        case 25..<50:
            let contact = random.pick(allActiveContacts(state) ?? activeContacts)
            let draft = NoteDraft(
                contact: contact, text: "Call \(marker)", durationSeconds: UInt32(random.int(0...600)),
                outcome: random.pick(["reached", "voicemail", "busy", "no-answer"]))
            try store.write(wall: wall) { state, context throws(ValidationError) in try state.addNote(draft, context) }
            kind = .note
        case 50..<65:
            let start = Int64(1_800_000_000_000 + random.int(0...10_000) * 900_000)
            let draft = ScheduleDraft(
                title: "Visit \(marker)", start: start, end: start + Int64(random.int(1...8)) * 900_000,
                kind: random.pick(["callback", "appointment", "shift"]), assignees: ["drill-\(random.int(1...20))"])
            try store.write(wall: wall) { state, context throws(ValidationError) in
                try state.addScheduleEntry(draft, context)
            }
            kind = .scheduleEntry
        case 65..<80:
            // Tags only on this replica's own contacts, and few, so concurrent adds from other
            // replicas can never push a contact past the tag limit (which would be a rejection).
            let candidates = activeContacts.filter { (state.contact($0)?.tags.count ?? 0) < 20 }
            guard let contact = candidates.isEmpty ? nil : random.pick(candidates) else { return nil }
            var edit = ContactEdit()
            edit.addTags = [marker.text]
            if random.chance(0.3) { edit.company = "Acme \(random.int(1...9))" }
            try store.write(wall: wall) { state, context throws(ValidationError) in
                try state.editContact(contact, edit, context)
            }
            kind = .tag
        case 80..<90:
            let notes = state.notes.sortedKeys.filter { state.note($0)?.isActive == true }
            guard !notes.isEmpty else { return nil }
            let id = random.pick(notes)
            // The new body keeps the note's own marker, so the note can still be counted.
            let own = state.note(id)?.body.values.flatMap { Marker.all(in: $0) }.first
            let text = "Call \(own?.text ?? "") edited \(random.int(0...999_999))"
            try store.write(wall: wall) { state, context throws(ValidationError) in
                try state.editNote(id, text: text, context)
            }
            writes += 1
            return nil
        default:
            let entries = state.schedule.sortedKeys.filter { state.scheduleEntry($0)?.isActive == true }
            guard !entries.isEmpty else { return nil }
            let id = random.pick(entries)
            let start = Int64(1_800_000_000_000 + random.int(0...10_000) * 900_000)
            let interval = try Interval(
                start: start, end: start + 1_800_000, timeZone: "Europe/Prague", limits: store.options.settings.limits)
            try store.write(wall: wall) { state, context throws(ValidationError) in
                try state.moveScheduleEntry(id, to: interval, context)
            }
            writes += 1
            return nil
        }
        writes += 1
        if let kind {
            ledger.record(marker, kind)
            unsynced.append(marker)
        }
        return marker
    }

    /// A sync that started after these writes succeeded: the server acknowledged them.
    public mutating func markSynced(upTo count: Int) {
        ledger.acknowledge(unsynced.prefix(count))
        unsynced.removeFirst(min(count, unsynced.count))
    }

    private mutating func allActiveContacts(_ state: TenantState) -> [EntityID]? {
        // Notes go to any active contact, other replicas' too (the newest 64: sorted keys keep a
        // replay's choices the same; a dictionary's order changes from run to run).
        guard random.chance(0.5) else { return nil }
        let keys = Array(state.contacts.sortedKeys.suffix(64)).filter { state.contact($0)?.isActive == true }
        return keys.isEmpty ? nil : keys
    }
}

/// How many records carry each marker in one replica's (or the server's) state.
public struct MarkerCensus: Sendable {
    public let recordsByMarker: [Marker: Int]

    public init(_ state: TenantState) {
        var counts: [Marker: Int] = [:]
        func count(_ texts: [String]) {
            for marker in Set(texts.flatMap { Marker.all(in: $0) }) { counts[marker, default: 0] += 1 }
        }
        for (_, contact) in state.contacts.valueByKey { count(contact.name.values + contact.tags.elements) }
        for (_, note) in state.notes.valueByKey { count(note.body.values) }
        for (_, entry) in state.schedule.valueByKey { count(entry.title.values) }
        recordsByMarker = counts
    }

    /// Ledger markers no record carries, and those more than one record carries.
    public func audit(_ ledger: WriteLedger) -> (lost: [Marker], duplicated: [Marker]) {
        var lost = [Marker]()
        var duplicated = [Marker]()
        for marker in ledger.kindByMarker.keys {
            switch recordsByMarker[marker, default: 0] {
            case 0: lost.append(marker)
            case 1: break
            default: duplicated.append(marker)
            }
        }
        return (lost.sorted(), duplicated.sorted())
    }
}
