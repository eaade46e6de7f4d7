/// A seedable random number generator (SplitMix64), so every randomized test can print its
/// seed and be replayed exactly.
///
/// - SeeAlso: Steele, Lea, Flood, "Fast Splittable Pseudorandom Number Generators" (OOPSLA 2014).
public struct SeededRandom: RandomNumberGenerator, Sendable {
    public private(set) var state: UInt64
    public let seed: UInt64

    public init(seed: UInt64) {
        self.seed = seed
        state = seed
    }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// True with probability `probability`.
    public mutating func chance(_ probability: Double) -> Bool {
        Double.random(in: 0..<1, using: &self) < probability
    }

    public mutating func int(_ range: ClosedRange<Int>) -> Int {
        Int.random(in: range, using: &self)
    }

    public mutating func pick<C: Collection>(_ collection: C) -> C.Element {
        collection.randomElement(using: &self)!
    }
}

/// Settings for randomized tests, read from the environment so CI runs the default tier and
/// a release check can run the long one.
///
/// - `KRALIKI_LONG_FUZZ=1` multiplies case and seed counts (100,000+ convergence seeds).
/// - `KRALIKI_SEED=N` replays one seed of the seeded tests.
public enum FuzzSettings {
    public static var isLong: Bool {
        environment("KRALIKI_LONG_FUZZ").map { $0 == "1" || $0.lowercased() == "true" } ?? false
    }

    /// The one seed to replay, when `KRALIKI_SEED` is set.
    public static var replaySeed: UInt64? {
        environment("KRALIKI_SEED").flatMap { UInt64($0) }
    }

    /// The seeds to run: the replay seed alone, or `count` seeds (× `longFactor` in long mode)
    /// derived from `base`.
    public static func seeds(count: Int, longCount: Int, base: UInt64) -> [UInt64] {
        if let replaySeed { return [replaySeed] }
        let total = isLong ? longCount : count
        return (0..<UInt64(total)).map { base &+ $0 &* 0x9E37_79B9 }
    }

    private static func environment(_ name: String) -> String? {
        guard let value = getenv(name) else { return nil }
        return String(cString: value)
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
