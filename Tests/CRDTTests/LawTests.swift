import CRDT
import CRDTTestSupport
import Testing

/// Every CRDT type against the same laws (see `checkLaws`): commutativity, associativity,
/// idempotence, bottom as identity, delta-merge equals state-merge, binary and JSON round trips,
/// deterministic encoding. 1,000 generated cases per law per type (10,000 with
/// KRALIKI_LONG_FUZZ=1); a failure prints its seed, replayable with KRALIKI_SEED.
@Suite("Lattice laws")
struct LawTests {
    static var cases: Int { FuzzSettings.isLong ? 10_000 : 1_000 }

    static let names = ["Jana", "Petr", "Eva", "Ondřej", "Zoë", "", "a longer value with spaces"]

    static func run<State>(_ subject: LawSubject<State>, seed: UInt64) {
        let (failures, checks) = checkLaws(subject, cases: cases, seed: seed)
        print(
            "laws \(subject.name): "
                + checks.sorted { $0.key < $1.key }.map { "\($0.key) ×\($0.value)" }.joined(separator: ", "))
        for failure in failures { Issue.record("\(failure)") }
        for law in [
            "commutativity", "associativity", "idempotence", "identity", "delta-merge equals state-merge",
            "binary round trip", "JSON round trip",
        ] {
            #expect((checks[law] ?? 0) >= cases, "law \(law) ran \(checks[law] ?? 0) times, fewer than \(cases)")
        }
    }

    @Test func versionVector() {
        Self.run(
            LawSubject<VersionVector>("VersionVector") { _, state, stamp in
                let delta = VersionVector([stamp.dot])
                state.merge(delta)
                return delta
            }, seed: 0x1000)
    }

    @Test func lwwRegister() {
        Self.run(
            LawSubject<LWWRegister<String>>("LWWRegister") { rng, state, stamp in
                state.write(rng.pick(Self.names), at: stamp)
            }, seed: 0x2000)
    }

    @Test func mvRegister() {
        Self.run(
            LawSubject<MVRegister<String>>("MVRegister") { rng, state, stamp in
                rng.chance(0.85) ? state.write(rng.pick(Self.names), at: stamp) : state.removeAll()
            }, seed: 0x3000)
    }

    @Test func orSet() {
        Self.run(
            LawSubject<ORSet<UInt8>>("ORSet") { rng, state, stamp in
                switch rng.int(0...9) {
                case 0...5: state.insert(UInt8(rng.int(0...5)), at: stamp)
                case 6...8: state.remove(UInt8(rng.int(0...5)))
                default: state.removeAll()
                }
            }, seed: 0x4000)
    }

    @Test func orMapOfRegisters() {
        Self.run(
            LawSubject<ORMap<UInt8, MVRegister<String>>>("ORMap<MVRegister>") { rng, state, stamp in
                let key = UInt8(rng.int(0...4))
                if rng.chance(0.8) {
                    let value = rng.pick(Self.names)
                    return state.update(key) { $0.write(value, at: stamp) }
                }
                return state.remove(key)
            }, seed: 0x5000)
    }

    @Test func orMapOfRecords() {
        Self.run(
            LawSubject<ORMap<UInt64, TestRecord>>("ORMap<record>") { rng, state, stamp in
                let key = UInt64(rng.int(0...3))
                let choice = rng.int(0...9)
                if choice == 9 { return state.remove(key) }
                let name = rng.pick(Self.names)
                let tag = UInt8(rng.int(0...3))
                let score = UInt64(rng.int(0...300))
                return state.update(key) { record in
                    var delta = TestRecord()
                    switch choice {
                    case 0...3: delta.name = record.name.write(name, at: stamp)
                    case 4...5: delta.score = record.score.write(score, at: stamp)
                    case 6...7: delta.tags = record.tags.insert(tag, at: stamp)
                    default: delta.tags = record.tags.remove(tag)
                    }
                    return delta
                }
            }, seed: 0x6000)
    }

    @Test func nestedMaps() {
        Self.run(
            LawSubject<ORMap<String, ORMap<UInt8, ORSet<String>>>>("ORMap<ORMap<ORSet>>") { rng, state, stamp in
                let outer = rng.pick(["a", "b"])
                let inner = UInt8(rng.int(0...2))
                let element = rng.pick(Self.names)
                switch rng.int(0...9) {
                case 0...5: return state.update(outer) { map in map.update(inner) { $0.insert(element, at: stamp) } }
                case 6...7: return state.update(outer) { map in map.update(inner) { $0.remove(element) } }
                default: return state.remove(outer)
                }
            }, seed: 0x7000)
    }
}
