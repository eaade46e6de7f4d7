import CRDT
import Domain
import Testing

/// `TenantState.entityChanges()` and `reissue(_:ids:context:)` on the cases the randomized
/// ReplicaTests/ReissueTests do not make: restores, merges, conflict decisions, fields no command
/// edits, and how a change is described.
@Suite("Refused changes: description and re-issue")
struct RefusedChangeTests {
    /// One device writing with its own clock.
    struct Device {
        var clock: HybridLogicalClock
        let author: Author
        var wall: UInt64 = 1_764_000_000_000

        init(_ replica: UInt64, user: String = "jana") {
            clock = HybridLogicalClock(replica: ReplicaID(replica))
            author = Author(user: user, device: ReplicaID(replica))
        }

        mutating func context() -> WriteContext {
            wall += 1_000
            return WriteContext(author: author, stamp: clock.now(wall: wall))
        }

        @discardableResult
        mutating func write(
            _ state: inout TenantState,
            _ command: (inout TenantState, WriteContext) throws(ValidationError) -> TenantState
        ) throws -> TenantState {
            let context = context()
            return try command(&state, context)
        }
    }

    @Test func describesWhatAChangeWrote() throws {
        var old = Device(0x01D)
        var state = TenantState()
        let created = try old.write(&state) { s, c throws(ValidationError) in
            try s.createContact(ContactDraft(name: "Jana", tags: ["vip", "old"], customFields: ["region": "Brno"]), c)
        }
        let id = created.contacts.sortedKeys[0]
        #expect(created.entityChanges().map(\.action) == [.create])
        #expect(
            created.entityChanges()[0].fields.contains(FieldChange(field: "field.region", action: .set, value: "Brno")))
        var edit = ContactEdit()
        edit.removeTags = ["old"]
        edit.addTags = ["new"]
        edit.customFields = ["region": ""]
        let edited = try old.write(&state) { s, c throws(ValidationError) in try s.editContact(id, edit, c) }
        #expect(
            edited.entityChanges()
                == [
                    EntityChange(
                        kind: .contact, id: id, action: .edit,
                        fields: [
                            FieldChange(field: "field.region", action: .remove, value: ""),
                            FieldChange(field: "tags", action: .add, value: "new"),
                            FieldChange(field: "tags", action: .remove, value: "old"),
                        ])
                ])
        let deleted = try old.write(&state) { s, c throws(ValidationError) in try s.delete(.contact, id, c) }
        #expect(deleted.entityChanges() == [EntityChange(kind: .contact, id: id, action: .delete, fields: [])])
        let restored = try old.write(&state) { s, c throws(ValidationError) in try s.restore(.contact, id, c) }
        #expect(restored.entityChanges().map(\.action) == [.restore])
    }

    @Test func restoresMergesAndDecisionsAreLeftOutNotMade() throws {
        // Shared: two contacts with the same phone (a probable duplicate), and one deleted contact.
        var office = Device(0x0FF1CE, user: "office")
        var shared = TenantState()
        let a = try office.write(&shared) { s, c throws(ValidationError) in
            try s.createContact(ContactDraft(name: "A", phones: ["+420601000000"]), c)
        }.contacts.sortedKeys[0]
        // A duplicate is the same phone created on two devices.
        var desk = Device(0x0DE5C, user: "desk")
        let b = try desk.write(&shared) { s, c throws(ValidationError) in
            try s.createContact(ContactDraft(name: "B", phones: ["+420601000000"]), c)
        }.contacts.sortedKeys[0]
        let gone = try office.write(&shared) { s, c throws(ValidationError) in
            try s.createContact(ContactDraft(name: "Gone"), c)
        }.contacts.sortedKeys[0]
        try office.write(&shared) { s, c throws(ValidationError) in try s.delete(.contact, gone, c) }

        // The old replica restores the deleted one and merges the duplicates; both refused.
        var old = Device(0x01D)
        var mine = shared
        let restore = try old.write(&mine) { s, c throws(ValidationError) in try s.restore(.contact, gone, c) }
        let conflict = try #require(mine.conflicts().first { $0.kind == .probableDuplicate })
        let merge = try old.write(&mine) { s, c throws(ValidationError) in
            try s.resolve(conflict.id, .mergeInto(a), c)
        }

        var new = Device(0x0E3)
        var here = shared
        var ids = [EntityID: EntityID]()
        let restored = try here.reissue(restore, ids: &ids) { new.context() }
        #expect(restored.deltas.isEmpty && restored.leftOut.map(\.reason) == [.deleted])
        #expect(here.contact(gone)?.isActive == false, "a re-issue brought a deleted contact back")
        let merged = try here.reissue(merge, ids: &ids) { new.context() }
        // The survivor's additions (none: the same phone) are made; the merge itself is left out.
        #expect(merged.leftOut.contains { $0.change.id == b && $0.reason == .noCommand })
        #expect(here.contact(b)?.isActive == true, "a merge was replayed")
        #expect(here == shared.merging(TenantState.merged(merged.deltas)))
    }

    @Test func fieldsNoCommandEditsAreLeftOutBesideTheOnesMade() throws {
        var office = Device(0x0FF1CE, user: "office")
        var shared = TenantState()
        let entry = try office.write(&shared) { s, c throws(ValidationError) in
            try s.addScheduleEntry(ScheduleDraft(title: "Visit", start: 1_764_061_200_000, end: 1_764_064_800_000), c)
        }.schedule.sortedKeys[0]
        // A delta writing the title (only a conflict resolution does) and the status together.
        var old = Device(0x01D)
        var mine = shared
        var entryState = mine.schedule[entry]!
        let stamp = old.context().stamp
        var delta = ScheduleEntry()
        delta.title = entryState.title.write("Visit (moved)", at: stamp)
        delta.status = entryState.status.write(.done, at: stamp)
        let change = TenantState(schedule: ORMap([entry: delta]))
        mine.merge(change)

        var new = Device(0x0E3)
        var here = shared
        var ids = [EntityID: EntityID]()
        let outcome = try here.reissue(change, ids: &ids) { new.context() }
        #expect(here.scheduleEntry(entry)?.status.value == .done)
        #expect(here.scheduleEntry(entry)?.title.value == "Visit")
        #expect(
            outcome.leftOut.map(\.change.fields)
                == [[FieldChange(field: "title", action: .set, value: "Visit (moved)")]])
        #expect(outcome.leftOut.map(\.reason) == [.noCommand])
    }
}

extension TenantState {
    static func merged(_ deltas: [TenantState]) -> TenantState {
        deltas.reduce(into: TenantState()) { $0.merge($1) }
    }
}
