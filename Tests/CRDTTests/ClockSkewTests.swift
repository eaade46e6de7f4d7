import CRDT
import CRDTTestSupport
import Testing

/// Replicas whose wall clocks are wrong: by an hour, a day, a year, either way, and clocks
/// that jump backwards. The promises: a write made after observing a value supersedes it and
/// is stamped later; stamps stay monotonic; a stamp beyond the drift bound is refused.
@Suite("Clock skew")
struct ClockSkewTests {
    static let hour: Int64 = 3_600_000
    static let day: Int64 = 24 * hour
    static let year: Int64 = 365 * day
    static let skews: [Int64] = [hour, -hour, day, -day, year, -year]
    static let now: UInt64 = 1_764_000_000_000

    let skewed = ReplicaID(0x5C3)
    let correct = ReplicaID(0xC0)

    @Test("a write after observing supersedes, whichever side the wrong clock is on", arguments: skews)
    func observedWritesSupersede(skew: Int64) throws {
        let bound = UInt64(abs(skew)) + 60_000  // wide enough to accept the skewed stamps
        var skewedClock = HybridLogicalClock(replica: skewed, maxForwardDrift: bound)
        var correctClock = HybridLogicalClock(replica: correct, maxForwardDrift: bound)
        let skewedWall = UInt64(Int64(Self.now) + skew)

        // The skewed replica writes; the correct one observes it, then writes.
        var onSkewed = MVRegister<String>()
        var onCorrect = MVRegister<String>()
        let first = onSkewed.write("Acme s.r.o.", at: skewedClock.now(wall: skewedWall))
        onCorrect.merge(first)
        try correctClock.receive(first.stamp!, wall: Self.now)
        let second = onCorrect.write("Acme a.s.", at: correctClock.now(wall: Self.now + 10))
        #expect(second.stamp! > first.stamp!)
        onSkewed.merge(second)
        #expect(onSkewed.values == ["Acme a.s."])
        #expect(onSkewed == onCorrect)

        // And the other way round: the skewed replica observes, then writes.
        try skewedClock.receive(second.stamp!, wall: skewedWall + 20)
        let third = onSkewed.write("ACME", at: skewedClock.now(wall: skewedWall + 20))
        #expect(third.stamp! > second.stamp!)
        onCorrect.merge(third)
        #expect(onCorrect.values == ["ACME"])
        #expect(!onCorrect.hasConflict)
    }

    @Test("with the default bound, stamps from a clock that runs ahead are refused", arguments: skews.filter { $0 > 0 })
    func fastClocksRefused(skew: Int64) {
        var skewedClock = HybridLogicalClock(replica: skewed)
        var correctClock = HybridLogicalClock(replica: correct)
        let before = correctClock.now(wall: Self.now)
        let stamp = skewedClock.now(wall: UInt64(Int64(Self.now) + skew))
        #expect(
            throws: ClockError.driftExceeded(
                remote: stamp, wall: Self.now, maxForwardDrift: HybridLogicalClock.defaultMaxForwardDrift)
        ) {
            try correctClock.receive(stamp, wall: Self.now)
        }
        #expect(correctClock.last == before, "a refused stamp must not move the clock")
        #expect(correctClock.now(wall: Self.now).physical == Self.now)
    }

    @Test("stamps from a clock that runs behind are accepted", arguments: skews.filter { $0 < 0 })
    func slowClocksAccepted(skew: Int64) throws {
        var skewedClock = HybridLogicalClock(replica: skewed)
        var correctClock = HybridLogicalClock(replica: correct)
        let stamp = skewedClock.now(wall: UInt64(Int64(Self.now) + skew))
        let merged = try correctClock.receive(stamp, wall: Self.now)
        #expect(merged.physical == Self.now)
    }

    @Test("stamps stay strictly monotonic through random backward jumps")
    func backwardJumps() {
        for seed in FuzzSettings.seeds(count: 200, longCount: 10_000, base: 0x5EED) {
            var rng = SeededRandom(seed: seed)
            var clock = HybridLogicalClock(replica: correct, maxForwardDrift: UInt64(2 * Self.year))
            var wall = Int64(Self.now)
            var last = HLC(time: 0, replica: correct)
            var maxSeen: UInt64 = 0
            for _ in 0..<500 {
                switch rng.int(0...9) {
                case 0: wall -= Int64(rng.int(1...Int(Self.day)))  // NTP step, manual change, VM restore
                case 1: wall -= Int64(rng.int(1...1_000))
                default: wall += Int64(rng.int(0...100))
                }
                let stamp: HLC
                if rng.chance(0.3) {
                    let remote = HLC(
                        physical: UInt64(wall + Int64(rng.int(-1_000...1_000))), logical: UInt16(rng.int(0...3)),
                        replica: skewed)
                    maxSeen = max(maxSeen, remote.physical)
                    stamp = (try? clock.receive(remote, wall: UInt64(wall))) ?? clock.now(wall: UInt64(wall))
                } else {
                    stamp = clock.now(wall: UInt64(wall))
                }
                maxSeen = max(maxSeen, UInt64(wall))
                #expect(stamp > last, "seed \(seed): \(stamp) after \(last)")
                // The physical part never runs ahead of the largest time seen (no overflow here).
                #expect(stamp.physical <= maxSeen, "seed \(seed): \(stamp) ahead of every clock seen")
                last = stamp
            }
        }
    }
}
