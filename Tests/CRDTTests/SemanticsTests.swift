import CRDT
import CRDTTestSupport
import Testing

/// The behaviours the design promises, each shown on a small example.
@Suite("CRDT semantics")
struct SemanticsTests {
    let jana = ReplicaID(0x1)
    let petr = ReplicaID(0x2)

    @Test("concurrent register writes are both kept; every replica shows the same winner")
    func concurrentWritesKept() {
        var a = MVRegister<String>()
        var b = MVRegister<String>()
        let da = a.write("Novák", at: HLC(physical: 1_000, replica: jana))
        let db = b.write("Nováková", at: HLC(physical: 900, replica: petr))
        a.merge(db)
        b.merge(da)
        #expect(a == b)
        #expect(a.hasConflict)
        #expect(Set(a.values) == ["Novák", "Nováková"])
        #expect(a.value == "Novák")  // greatest HLC
    }

    @Test("a write supersedes exactly the siblings it saw; a concurrent one stays")
    func supersedesObserved() {
        var a = MVRegister<String>()
        var b = MVRegister<String>()
        var c = MVRegister<String>()
        let first = a.write("v1", at: HLC(physical: 1, replica: jana))
        b.merge(first)
        let overwrite = b.write("v2", at: HLC(physical: 2, replica: petr))  // saw v1
        let concurrent = c.write("v3", at: HLC(physical: 3, replica: ReplicaID(3)))  // saw nothing
        for delta in [overwrite, concurrent, first] { a.merge(delta) }
        #expect(Set(a.values) == ["v2", "v3"])
        // A resolution sees both and supersedes both.
        let resolution = a.write("v2", at: HLC(physical: 4, replica: jana))
        c.merge(first)
        c.merge(overwrite)
        c.merge(resolution)
        #expect(c.values == ["v2"])
        #expect(!c.hasConflict)
    }

    @Test("a wall clock far behind still supersedes what it observed")
    func slowClockSupersedes() throws {
        var fast = HybridLogicalClock(replica: jana, maxForwardDrift: 400 * 86_400_000)
        var slow = HybridLogicalClock(replica: petr, maxForwardDrift: 400 * 86_400_000)
        let yearMs: UInt64 = 365 * 86_400_000
        var a = MVRegister<String>()
        var b = MVRegister<String>()
        let delta = a.write("from the future", at: fast.now(wall: 1_764_000_000_000 + yearMs))
        b.merge(delta)
        try slow.receive(delta.stamp!, wall: 1_764_000_000_000)
        b.write("corrected", at: slow.now(wall: 1_764_000_000_000))
        a.merge(b)
        #expect(a.values == ["corrected"])
    }

    @Test("add wins over a concurrent remove in an ORSet")
    func addWins() {
        var a = ORSet<String>()
        var b = ORSet<String>()
        let add = a.insert("vip", at: HLC(physical: 1, replica: jana))
        b.merge(add)
        let remove = b.remove("vip")
        let readd = a.insert("vip", at: HLC(physical: 2, replica: jana))
        a.merge(remove)
        b.merge(readd)
        #expect(a == b)
        #expect(a.contains("vip"))
        #expect(a.stamps(of: "vip") == [HLC(physical: 2, replica: jana)])
    }

    @Test("a removed element does not come back when an old insertion arrives late")
    func noResurrection() {
        var a = ORSet<String>()
        var b = ORSet<String>()
        let add = a.insert("+420601234567", at: HLC(physical: 1, replica: jana))
        let remove = a.remove("+420601234567")
        b.merge(remove)
        b.merge(add)  // late and out of order
        #expect(!b.contains("+420601234567"))
        #expect(a == b)
    }

    @Test("removing a map key keeps a concurrent update of its value")
    func mapUpdateWins() {
        var a = ORMap<String, MVRegister<String>>()
        var b = ORMap<String, MVRegister<String>>()
        let create = a.update("title") { $0.write("Sales", at: HLC(physical: 1, replica: jana)) }
        b.merge(create)
        let remove = a.remove("title")
        let edit = b.update("title") { $0.write("Head of sales", at: HLC(physical: 2, replica: petr)) }
        a.merge(edit)
        b.merge(remove)
        #expect(a == b)
        #expect(a["title"]?.values == ["Head of sales"])
    }

    @Test("merging a known join takes its values and hands back exactly the ones it replaced")
    func mergeJoinedReturnsReplaced() {
        var map = ORMap<String, MVRegister<String>>()
        map.update("title") { $0.write("Sales", at: HLC(physical: 1, replica: jana)) }
        map.update("company") { $0.write("Acme", at: HLC(physical: 2, replica: jana)) }
        let before = map
        // The join at each key it touches: the title edited over what `map` holds, a new status.
        var title = map["title"]!
        title.write("Head of sales", at: HLC(physical: 3, replica: petr))
        var joined = ORMap<String, MVRegister<String>>()
        joined.update("title") { value in
            value = title
            return title
        }
        joined.update("status") { $0.write("lead", at: HLC(physical: 4, replica: petr)) }
        let replaced = map.mergeJoined(joined)
        #expect(map == before.merging(joined))
        #expect(replaced == [before["title"]!], "only the title was there before")
    }

    @Test("last-writer-wins keeps the greatest stamp, ties broken by replica")
    func lastWriterWins() {
        var a = LWWRegister<String>()
        var b = LWWRegister<String>()
        a.write("a", at: HLC(physical: 5, replica: petr))
        b.write("b", at: HLC(physical: 5, replica: jana))
        #expect(a.merging(b).value == "a")
        #expect(b.merging(a).value == "a")
    }
}
