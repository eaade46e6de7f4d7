import CRDTTestSupport
import DomainTestSupport
import Testing

/// The domain convergence fuzzer (see `ProtocolSimulation`): 1,000 seeds by default, 20,000 with
/// KRALIKI_LONG_FUZZ=1; KRALIKI_SEED=N replays one.
@Suite("Domain convergence fuzzer")
struct DomainFuzzTests {
    @Test func replicasAndServerConverge() {
        let seeds = FuzzSettings.seeds(count: 1_000, longCount: 20_000, base: 0xD0_0A1)
        var failed = [UInt64]()
        var totals = [String: Int]()
        for seed in seeds {
            var simulation = ProtocolSimulation(seed: seed)
            let problems = simulation.run()
            for (key, value) in simulation.stats { totals[key, default: 0] += value }
            if !problems.isEmpty {
                failed.append(seed)
                if failed.count <= 3 {
                    let report = problems.prefix(5).joined(separator: "\n")
                    Issue.record("seed \(seed) (replay with KRALIKI_SEED=\(seed)):\n\(report)")
                }
            }
        }
        let summary = totals.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        print("domain fuzzer: \(seeds.count) seeds; \(summary); failing seeds: \(failed.count)")
        #expect(failed.count == 0, "seeds failed; replay one with KRALIKI_SEED")
        if FuzzSettings.replaySeed == nil {
            #expect(seeds.count >= 1_000)
            for key in [
                "resolutions", "requests dropped", "responses dropped", "requests duplicated", "restores", "timeouts",
            ] {
                #expect((totals[key] ?? 0) > 0, "the fuzzer never exercised \(key)")
            }
        }
    }
}
