import CRDT
import Testing

/// The README's ten-line example, verbatim, so the README cannot drift from the code.
@Test("the README example does what the README says")
func readmeExample() {
    var janaClock = HybridLogicalClock(replica: ReplicaID(1))
    var petrClock = HybridLogicalClock(replica: ReplicaID(2))
    var onJana = MVRegister<String>(), onPetr = MVRegister<String>()
    let a = onJana.write("Acme s.r.o.", at: janaClock.now(wall: 1_764_000_000_000))
    let b = onPetr.write("ACME a.s.", at: petrClock.now(wall: 1_764_000_000_050))  // concurrent
    onJana.merge(b)  // ship deltas, in any order, any number of times
    onPetr.merge(a)
    assert(onJana == onPetr && onJana.hasConflict)  // both values kept, same winner everywhere
    print(onJana.value!, onJana.values)  // "ACME a.s." ["Acme s.r.o.", "ACME a.s."]

    #expect(onJana == onPetr && onJana.hasConflict)
    #expect(onJana.value == "ACME a.s.")
    #expect(onJana.values == ["Acme s.r.o.", "ACME a.s."])
}
