import CRDT
import Foundation

/// A CRDT type under test: how to make a random local operation on it.
public struct LawSubject<State: Mergeable & BinaryBlob & Codable>: Sendable {
    public let name: String
    /// Applies one random local operation stamped `stamp` to `state` and returns its delta.
    public let operate: @Sendable (inout SeededRandom, inout State, HLC) -> State

    public init(_ name: String, operate: @escaping @Sendable (inout SeededRandom, inout State, HLC) -> State) {
        self.name = name
        self.operate = operate
    }
}

/// A few replicas of one CRDT that operate and gossip at random; the states they reach are the
/// inputs of the law checks (arbitrary values would break invariants no real replica breaks,
/// such as one replica's stamps only growing).
public struct World<State: Mergeable & BinaryBlob & Codable> {
    public private(set) var states: [State]
    public private(set) var deltas: [State] = []
    private var clocks: [HybridLogicalClock]
    private var wall: UInt64 = 1_764_000_000_000
    private let subject: LawSubject<State>

    public init(_ subject: LawSubject<State>, replicas: Int, rng: inout SeededRandom) {
        self.subject = subject
        states = Array(repeating: State(), count: replicas)
        // Small replica IDs collide with each other's order often enough to test tie-breaks.
        clocks = (0..<replicas).map {
            HybridLogicalClock(replica: ReplicaID(UInt64($0) * 7 + 1 + rng.next() % 3 * 100))
        }
    }

    /// One random step: a local operation, or merging another replica's state or an old delta.
    public mutating func step(_ rng: inout SeededRandom) {
        let replica = rng.int(0...states.count - 1)
        // Always forward, so every new stamp is above every stamp merged so far, as a clock that
        // observes what it merges guarantees (LWWRegister.write relies on it).
        wall += UInt64(rng.int(1...3))
        switch rng.int(0...9) {
        case 0...5:
            let stamp = clocks[replica].now(wall: wall)
            deltas.append(subject.operate(&rng, &states[replica], stamp))
        case 6...7:
            states[replica].merge(states[rng.int(0...states.count - 1)])
        default:
            if let delta = deltas.randomElement(using: &rng) { states[replica].merge(delta) }
        }
    }

    /// A local operation at `replica`, returning its delta.
    public mutating func operate(at replica: Int, _ rng: inout SeededRandom) -> State {
        wall += 1
        let stamp = clocks[replica].now(wall: wall)
        return subject.operate(&rng, &states[replica], stamp)
    }
}

/// One broken law, with what is needed to replay it.
public struct LawFailure: CustomStringConvertible, Sendable {
    public let subject: String
    public let law: String
    public let seed: UInt64
    public let detail: String

    public var description: String {
        "\(subject): \(law) fails for seed \(seed) (replay with KRALIKI_SEED=\(seed)): \(detail)"
    }
}

/// Checks the lattice laws, the delta law and the encodings of a CRDT type on `cases`
/// generated cases each, and returns every failure (empty when all hold).
///
/// Laws: merge is commutative, associative and idempotent with bottom as identity; merging a
/// delta equals merging the state it came from, before or after other merges; binary and JSON
/// encodings round-trip, and equal states encode to equal bytes.
public func checkLaws<State>(
    _ subject: LawSubject<State>, cases: Int, seed: UInt64
) -> (failures: [LawFailure], checks: [String: Int]) {
    var failures = [LawFailure]()
    var checks = [String: Int]()
    func check(_ law: String, _ holds: Bool, _ caseSeed: UInt64, _ detail: @autoclosure () -> String) {
        checks[law, default: 0] += 1
        if !holds && failures.count < 20 {
            failures.append(LawFailure(subject: subject.name, law: law, seed: caseSeed, detail: detail()))
        }
    }
    let seeds = FuzzSettings.replaySeed.map { [$0] } ?? (0..<UInt64(cases)).map { seed &+ $0 }
    let encoder = JSONEncoder()
    encoder.outputFormatting = .sortedKeys
    let decoder = JSONDecoder()

    for caseSeed in seeds {
        var rng = SeededRandom(seed: caseSeed)
        var world = World(subject, replicas: 3, rng: &rng)
        for _ in 0..<rng.int(0...24) { world.step(&rng) }
        let a = world.states[0]
        let b = world.states[1]
        let c = world.states[2]

        check("commutativity", a.merging(b) == b.merging(a), caseSeed, "a⊔b ≠ b⊔a\n a=\(a)\n b=\(b)")
        check("associativity", a.merging(b).merging(c) == a.merging(b.merging(c)), caseSeed, "(a⊔b)⊔c ≠ a⊔(b⊔c)")
        check("idempotence", a.merging(a) == a, caseSeed, "a⊔a ≠ a\n a=\(a)")
        check("identity", a.merging(State()) == a && State().merging(a) == a, caseSeed, "a⊔⊥ ≠ a")

        var before = world
        let delta = before.operate(at: 0, &rng)
        let after = before.states[0]
        check(
            "delta equals mutation", a.merging(delta) == after, caseSeed, "a⊔δ ≠ a'\n a=\(a)\n δ=\(delta)\n a'=\(after)"
        )
        check(
            "delta-merge equals state-merge", b.merging(a).merging(delta) == b.merging(after), caseSeed,
            "(b⊔a)⊔δ ≠ b⊔a'\n δ=\(delta)")
        check(
            "delta-merge equals state-merge", b.merging(delta).merging(a) == b.merging(after), caseSeed,
            "(b⊔δ)⊔a ≠ b⊔a' (delta arriving before the state it extends)\n δ=\(delta)")

        for value in [a, b, delta, a.merging(b)] {
            let bytes = value.encodedBlob()
            let decoded = Result { () throws(BinaryDecodingError) in try State(blob: bytes) }
            check(
                "binary round trip", (try? decoded.get()) == value, caseSeed,
                "decode(encode(x)) ≠ x for \(value): \(decoded)")
            let json = Result { try decoder.decode(State.self, from: encoder.encode(value)) }
            check(
                "JSON round trip", (try? json.get()) == value, caseSeed,
                "JSON decode(encode(x)) ≠ x for \(value): \(json)")
        }
        check(
            "deterministic encoding", a.merging(b).encodedBlob() == b.merging(a).encodedBlob(), caseSeed,
            "equal states encode differently")
    }
    return (failures, checks)
}
