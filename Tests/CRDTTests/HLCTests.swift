import CRDT
import CRDTTestSupport
import Testing

@Suite("Hybrid logical clock")
struct HLCTests {
    let me = ReplicaID(0xA)
    let other = ReplicaID(0xB)

    @Test("stamps order by physical time, then logical counter, then replica")
    func totalOrder() {
        let a = HLC(physical: 100, logical: 0, replica: other)
        let b = HLC(physical: 100, logical: 1, replica: me)
        let c = HLC(physical: 100, logical: 1, replica: other)
        let d = HLC(physical: 101, logical: 0, replica: me)
        #expect([d, c, a, b].sorted() == [a, b, c, d])
    }

    @Test("now follows the wall clock while it moves forward")
    func followsWallClock() {
        var clock = HybridLogicalClock(replica: me)
        #expect(clock.now(wall: 1_000) == HLC(physical: 1_000, replica: me))
        #expect(clock.now(wall: 1_000) == HLC(physical: 1_000, logical: 1, replica: me))
        #expect(clock.now(wall: 1_005) == HLC(physical: 1_005, replica: me))
    }

    @Test("now stays strictly monotonic when the wall clock jumps backwards")
    func backwardsJump() {
        var clock = HybridLogicalClock(replica: me)
        let before = clock.now(wall: 5_000_000)
        let after = clock.now(wall: 1_000)  // the wall clock was set back by ~83 minutes
        #expect(after > before)
        #expect(after.physical == before.physical)
        #expect(after.logical == before.logical + 1)
    }

    @Test("receive returns a stamp above both clocks")
    func receive() throws {
        var clock = HybridLogicalClock(replica: me, maxForwardDrift: 10_000)
        _ = clock.now(wall: 1_000)
        let remote = HLC(physical: 5_000, logical: 7, replica: other)
        let merged = try clock.receive(remote, wall: 2_000)
        #expect(merged > remote)
        #expect(merged == HLC(physical: 5_000, logical: 8, replica: me))
        #expect(clock.now(wall: 2_000) > merged)
    }

    @Test("a stamp beyond the drift bound is refused with a clear error and changes nothing")
    func driftRefused() {
        var clock = HybridLogicalClock(replica: me, maxForwardDrift: 60_000)
        let before = clock.now(wall: 1_000_000)
        let future = HLC(physical: 1_000_000 + 3_600_000, replica: other)
        #expect(throws: ClockError.self) { try clock.receive(future, wall: 1_000_000) }
        do {
            try clock.receive(future, wall: 1_000_000)
        } catch {
            #expect(error.code == .driftExceeded)
            #expect(error.aheadBy == 3_600_000)
            #expect(error.message.contains("3600000 ms ahead"))
            #expect(error.message.contains(other.hex))
        }
        #expect(clock.last == before)
        // Exactly at the bound is still accepted.
        #expect((try? clock.receive(HLC(physical: 1_060_000, replica: other), wall: 1_000_000)) != nil)
    }

    @Test("the logical counter borrows the next millisecond instead of wrapping")
    func logicalOverflow() {
        var clock = HybridLogicalClock(replica: me, last: HLC(physical: 10, logical: .max - 1, replica: me))
        let a = clock.now(wall: 10)
        let b = clock.now(wall: 10)
        #expect(a == HLC(physical: 10, logical: .max, replica: me))
        #expect(b == HLC(physical: 11, logical: 0, replica: me))
        #expect(b > a)
    }

    @Test("text and byte forms round-trip and sort like the stamps", arguments: [0, 1, 2, 3] as [UInt64])
    func persistableForms(seed: UInt64) {
        var rng = SeededRandom(seed: seed)
        var stamps = [HLC]()
        for _ in 0..<500 {
            stamps.append(
                HLC(
                    physical: rng.next() % HLC.maxPhysical, logical: UInt16.random(in: 0...3, using: &rng),
                    replica: ReplicaID(rng.next() % 4)))
        }
        for stamp in stamps {
            #expect(HLC(text: stamp.text) == stamp)
            #expect(HLC(bytes: stamp.bytes) == stamp)
        }
        #expect(stamps.sorted().map(\.text) == stamps.map(\.text).sorted())
        #expect(stamps.sorted().map(\.bytes) == stamps.map(\.bytes).sorted { $0.lexicographicallyPrecedes($1) })
        #expect(HLC(text: "not-a-stamp") == nil)
        #expect(HLC(text: "ffffffffffffff-0000-0000000000000001") == nil)
        #expect(HLC(bytes: [1, 2, 3]) == nil)
    }

    @Test("text forms are zero-padded lower-case hex of fixed width")
    func textForms() {
        #expect(
            HLC(physical: 0x123, logical: 0xA, replica: ReplicaID(0xBEEF)).text == "000000000123-000a-000000000000beef")
        #expect(
            HLC(physical: HLC.maxPhysical, logical: .max, replica: ReplicaID(.max)).text
                == "ffffffffffff-ffff-ffffffffffffffff")
        #expect(ReplicaID(0).hex == "0000000000000000")
        #expect(ReplicaID(0x0123_4567_89AB_CDEF).hex == "0123456789abcdef")
    }

    @Test("the clock persists: a clock restored from its last stamp never goes back")
    func restoredClock() {
        var clock = HybridLogicalClock(replica: me)
        var last = HLC(time: 0, replica: me)
        for wall in [100, 200, 150, 50, 300] as [UInt64] { last = clock.now(wall: wall) }
        var restored = HybridLogicalClock(replica: me, last: clock.last)
        #expect(restored.now(wall: 10) > last)
    }
}

@Suite("Version vectors")
struct VersionVectorTests {
    let r1 = ReplicaID(1)
    let r2 = ReplicaID(2)

    @Test("dominance and concurrency")
    func ordering() {
        let a = VersionVector([Dot(replica: r1, counter: 3), Dot(replica: r2, counter: 1)])
        let b = VersionVector([Dot(replica: r1, counter: 2)])
        let c = VersionVector([Dot(replica: r2, counter: 5)])
        #expect(a.dominates(b))
        #expect(!b.dominates(a))
        #expect(a.compare(b) == .after)
        #expect(b.compare(a) == .before)
        #expect(b.isConcurrent(with: c))
        #expect(b.compare(c) == .concurrent)
        #expect(a.compare(a) == .equal)
        #expect(VersionVector().compare(VersionVector()) == .equal)
        #expect(a.merging(c) == VersionVector([Dot(replica: r1, counter: 3), Dot(replica: r2, counter: 5)]))
    }

    @Test("covers a dot exactly up to its replica's entry")
    func covers() {
        let vector = VersionVector([Dot(replica: r1, counter: 3)])
        #expect(vector.covers(Dot(replica: r1, counter: 3)))
        #expect(vector.covers(Dot(replica: r1, counter: 1)))
        #expect(!vector.covers(Dot(replica: r1, counter: 4)))
        #expect(!vector.covers(Dot(replica: r2, counter: 1)))
        #expect(vector[r2] == 0)
    }
}
