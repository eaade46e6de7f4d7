import CRDT
import CRDTTestSupport
import Domain
import Testing

/// Which writes of a pushed change the pushing device did not make (``ForeignWrite``): none for a
/// device's own commands, whatever others wrote before; some whenever a delta is claimed by a
/// device that did not make it.
@Suite("Foreign writes")
struct OwnershipTests {
    static let wall: UInt64 = 1_764_061_200_000

    /// The foreign writes of every entity of `delta` merged into `server`, claimed by `author`.
    static func foreignWrites(_ delta: TenantState, into server: TenantState, by author: Author) -> [ForeignWrite] {
        func check<E: Entity>(_ delta: ORMap<EntityID, E>, _ stored: ORMap<EntityID, E>) -> [ForeignWrite] {
            delta.sortedKeys.flatMap { id in
                let before = stored[id]
                let after = before.map { $0.merging(delta[id]!) } ?? delta[id]!
                return E.foreignWrites(id: id, from: before, to: after, by: author)
            }
        }
        return check(delta.contacts, server.contacts) + check(delta.notes, server.notes)
            + check(delta.schedule, server.schedule)
    }

    @Test(
        "own commands hold no foreign write; the same deltas claimed by another device do",
        arguments: FuzzSettings.seeds(count: 5, longCount: 100, base: 0xF0E1))
    func ownAndClaimed(seed: UInt64) throws {
        print("foreign writes: seed \(seed) (KRALIKI_SEED=\(seed) replays)")
        var rng = SeededRandom(seed: seed)
        let authors = (1...3).map { Author(user: "user\($0)", device: ReplicaID(UInt64($0))) }
        var states = [TenantState](repeating: TenantState(), count: 3)
        var clocks = authors.map { HybridLogicalClock(replica: $0.device) }
        var server = TenantState()
        var (own, claimed, flagged, removals) = (0, 0, 0, 0)
        for step in 0..<300 {
            let index = rng.int(0...2)
            if rng.chance(0.5) {
                states[index].merge(server)
                if let newest = server.newestStamp { _ = try? clocks[index].receive(newest, wall: Self.wall) }
            }
            let context = WriteContext(
                author: authors[index], stamp: clocks[index].now(wall: Self.wall + UInt64(step)),
                settings: DomainSettings())
            let contacts = states[index].contacts.sortedKeys.filter { states[index].contacts[$0]!.isActive }
            let choice = contacts.isEmpty ? 0 : rng.int(0...6)
            // Every command but a removal writes a value: claimed by anyone else, it is foreign.
            var writesValue = true
            let delta: TenantState
            do {
                switch choice {
                case 0: delta = try states[index].createContact(ContactDraft(name: "C\(step)", tags: ["a"]), context)
                case 1:
                    var edit = ContactEdit()
                    edit.name = "Renamed \(step)"
                    delta = try states[index].editContact(rng.pick(contacts), edit, context)
                case 2:
                    var edit = ContactEdit()
                    edit.addTags = [rng.pick(["a", "b", "c"])]
                    delta = try states[index].editContact(rng.pick(contacts), edit, context)
                case 3:
                    let id = rng.pick(contacts)
                    guard let tag = states[index].contacts[id]!.tags.elements.first else { continue }
                    var edit = ContactEdit()
                    edit.removeTags = [tag]
                    delta = try states[index].editContact(id, edit, context)
                    writesValue = false
                    removals += 1
                case 4:
                    delta = try states[index].addNote(NoteDraft(contact: rng.pick(contacts), text: "n\(step)"), context)
                case 5: delta = try states[index].delete(.contact, rng.pick(contacts), context)
                default:
                    guard contacts.count >= 2 else { continue }
                    delta = try states[index].mergeContacts(contacts[0], into: contacts[1], context)
                }
            } catch {
                continue
            }
            if delta.isBottom { continue }
            let mine = Self.foreignWrites(delta, into: server, by: authors[index])
            #expect(mine.isEmpty, "seed \(seed) step \(step): own command \(choice) holds \(mine)")
            own += 1
            let impostor = authors[(index + 1) % 3]
            let theirs = Self.foreignWrites(delta, into: server, by: impostor)
            claimed += 1
            if !theirs.isEmpty { flagged += 1 }
            if writesValue {
                #expect(
                    !theirs.isEmpty, "seed \(seed) step \(step): command \(choice) claimed by another device passed")
                #expect(delta.mayHoldForeignWrites(by: impostor))
            }
            #expect(theirs.allSatisfy { $0.stamp.replica == authors[index].device })
            server.merge(delta)
        }
        print(
            "foreign writes: seed \(seed): \(own) own deltas clean, \(flagged)/\(claimed) claimed ones flagged (\(removals) removals)"
        )
        #expect(own > 100)
    }

    @Test("author records: another device's, or this device's naming another user, are foreign")
    func authorRecords() throws {
        let jana = Author(user: "jana", device: ReplicaID(1))
        var state = TenantState()
        var clock = HybridLogicalClock(replica: jana.device)
        let context = WriteContext(author: jana, stamp: clock.now(wall: Self.wall), settings: DomainSettings())
        let created = try state.createContact(ContactDraft(name: "Eva"), context)
        let id = created.contacts.sortedKeys[0]
        #expect(Self.foreignWrites(created, into: TenantState(), by: jana).isEmpty)
        // The same delta from a device that says its user is someone else.
        let liar = Author(user: "petr", device: ReplicaID(1))
        let lie = Self.foreignWrites(created, into: TenantState(), by: liar)
        #expect(lie.map(\.field) == ["authors.\(ReplicaID(1).hex)"])
        #expect(created.mayHoldForeignWrites(by: liar))

        // An edit by a device that also records another device as an author, under its own stamp.
        var other = TenantState()
        var otherClock = HybridLogicalClock(replica: ReplicaID(2))
        let forgedContext = WriteContext(
            author: Author(user: "eva", device: ReplicaID(2)), stamp: otherClock.now(wall: Self.wall + 5),
            settings: DomainSettings())
        other.merge(state)
        var edit = ContactEdit()
        edit.title = "Boss"
        let forged = try other.editContact(id, edit, forgedContext)
        // Claimed by Jana's device: the title and the author record are Eva's device's.
        let fields = Set(Self.foreignWrites(forged, into: state, by: jana).map(\.field))
        #expect(fields == ["title", "authors.\(ReplicaID(2).hex)"])
    }

    @Test("a new entity under another device's ID is foreign, even with only own stamps inside")
    func borrowedID() throws {
        let jana = Author(user: "jana", device: ReplicaID(1))
        var state = TenantState()
        var clock = HybridLogicalClock(replica: jana.device)
        let created = try state.createContact(
            ContactDraft(name: "Eva"),
            WriteContext(author: jana, stamp: clock.now(wall: Self.wall), settings: DomainSettings()))
        let entity = created.contacts.valueByKey.values.first!
        let borrowed = EntityID(time: Self.wall << 16, replica: ReplicaID(7))
        let writes = Contact.foreignWrites(id: borrowed, from: nil, to: entity, by: jana)
        #expect(writes.map(\.field) == ["id"])
        #expect(writes.first?.stamp.replica == ReplicaID(7))
    }
}
