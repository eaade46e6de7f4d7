import Domain
import Foundation
import LocalStorage
import Replica
import StoreSupport

/// The end of every drill: all replicas and the server hold the same state, and every write the
/// workloads made is in exactly one record everywhere.
public enum Convergence {
    /// What the final comparison found.
    public struct Verdict: Sendable, CustomStringConvertible {
        public var replicas = 0
        public var writes = 0
        public var acknowledged = 0
        /// Ledger markers missing from some replica or the server (the worst count over all of them).
        public var lost = 0
        /// Ledger markers carried by more than one record somewhere.
        public var duplicated = 0
        /// Replicas whose state differs from the server's.
        public var diverged: [String] = []
        public var examples: [String] = []

        public init() {}

        public var isClean: Bool { lost == 0 && duplicated == 0 && diverged.isEmpty }

        public var description: String {
            "replicas \(replicas), writes \(writes) (acknowledged \(acknowledged)), lost = \(lost), "
                + "duplicated = \(duplicated), diverged = \(diverged.count)"
                + (examples.isEmpty ? "" : " — " + examples.prefix(6).joined(separator: "; "))
        }
    }

    /// Syncs every replica (outbox drained, then pulled) until all hold the same state or
    /// `deadline` passes; throws when it passes.
    public static func settle(_ replicas: [DrillReplica], by deadline: ContinuousClock.Instant) async throws {
        while true {
            for replica in replicas { try await replica.syncUntilDrained(by: deadline) }
            // A second round pulls what the others pushed during the first.
            var failed = false
            for replica in replicas {
                do { try await replica.sync() } catch { failed = true }
            }
            let first = replicas[0].store.state
            if !failed && replicas.allSatisfy({ $0.store.state == first }) { return }
            guard ContinuousClock.now < deadline else {
                throw DrillFailure("replicas did not converge by the deadline")
            }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    /// Compares every replica's state with the server's (`server`: a fresh replica that pulled
    /// everything) and audits the ledger against each of them.
    public static func verdict(
        replicas: [(name: String, state: TenantState)], server: TenantState, ledger: WriteLedger
    ) -> Verdict {
        var verdict = Verdict()
        verdict.replicas = replicas.count
        verdict.writes = ledger.count
        verdict.acknowledged = ledger.acknowledged.count
        for (name, state) in [("server", server)] + replicas {
            let (lost, duplicated) = MarkerCensus(state).audit(ledger)
            verdict.lost = max(verdict.lost, lost.count)
            verdict.duplicated = max(verdict.duplicated, duplicated.count)
            if let marker = lost.first {
                verdict.examples.append("\(name) lacks \(marker) (\(ledger.kindByMarker[marker]!.rawValue))")
            }
            if let marker = duplicated.first { verdict.examples.append("\(name) has \(marker) more than once") }
            if name != "server" && state != server {
                verdict.diverged.append(name)
                verdict.examples.append(
                    "\(name) differs from the server (\(state.entityCount) vs \(server.entityCount) entities)")
            }
        }
        return verdict
    }
}

/// The one line of figures every drill prints, e.g.
/// `DRILL network-chaos seed=1 seeds=1 kills=0 requests=5123 writes=2950 lost=0 duplicated=0 converged=yes`.
public struct DrillFigures: Sendable, CustomStringConvertible {
    public var drill: String
    public var seeds: [UInt64] = []
    public var kills = 0
    public var requests = 0
    public var writes = 0
    public var lost = 0
    public var duplicated = 0
    public var converged = true
    /// Further figures, in order (`"resets": 12`).
    public var extra: [(String, String)] = []

    public init(drill: String) { self.drill = drill }

    public mutating func add(_ verdict: Convergence.Verdict) {
        writes += verdict.writes
        lost += verdict.lost
        duplicated += verdict.duplicated
        converged = converged && verdict.diverged.isEmpty
    }

    public var description: String {
        var line = "DRILL \(drill) seeds=\(seeds.count) [\(seeds.map(String.init).joined(separator: ","))]"
        line += " kills=\(kills) requests=\(requests) writes=\(writes) lost=\(lost) duplicated=\(duplicated)"
        line += " converged=\(converged ? "yes" : "NO")"
        for (name, value) in extra { line += " \(name)=\(value)" }
        return line
    }
}
