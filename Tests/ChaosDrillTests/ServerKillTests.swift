import CRDTTestSupport
import DomainTestSupport
import DrillSupport
import Foundation
import LocalStorage
import Replica
import StoreSupport
import SystemTestSupport
import Testing

/// Drill 2 (issue #7): server kill. Three replicas write and sync without pause while the real
/// `sync-server` process is SIGKILLed at ≥ 50 random moments, each while a push or a pull is in
/// flight; after every kill `PRAGMA integrity_check` must say ok before the server restarts on the
/// same port and data. At the end every write — acknowledged ones above all — is on the server
/// and on every replica exactly once, and the replicas equal the server.
@Suite("Drill 2: server kill")
struct ServerKillTests {
    @Test("SIGKILL the server mid-push and mid-pull ≥ 50 times: 0 acknowledged changes lost")
    func serverKill() async throws {
        let seeds = FuzzSettings.seeds(count: 1, longCount: 10, base: 0x5E4F_0200)
        var figures = DrillFigures(drill: "server-kill")
        var killsDuringPush = 0
        var killsDuringPull = 0
        var integrityFailures = [String]()
        var failures = [String]()
        for seed in seeds {
            let run = try await ServerKillRun.run(seed: seed, kills: 50)
            print(
                "server-kill seed \(run.seed): \(run.verdict); kills \(run.kills) "
                    + "(push \(run.killsDuringPush), pull \(run.killsDuringPull))")
            figures.seeds.append(seed)
            figures.kills += run.kills
            figures.requests += run.requests
            figures.add(run.verdict)
            killsDuringPush += run.killsDuringPush
            killsDuringPull += run.killsDuringPull
            integrityFailures += run.integrityFailures
            if !run.verdict.isClean { failures.append("seed \(seed) (replay: KRALIKI_SEED=\(seed)): \(run.verdict)") }
        }
        figures.extra = [
            ("kills-mid-push", "\(killsDuringPush)"), ("kills-mid-pull", "\(killsDuringPull)"),
            ("integrity-checks-ok", "\(figures.kills - integrityFailures.count)/\(figures.kills)"),
        ]
        print(figures)
        #expect(failures.isEmpty, "\(failures.joined(separator: "\n"))")
        #expect(integrityFailures.isEmpty, "\(integrityFailures)")
        #expect(figures.kills >= 50 * seeds.count)
        #expect(killsDuringPush > 0 && killsDuringPull > 0, "every kill missed a push or every kill missed a pull")
    }
}

/// One seed of drill 2.
struct ServerKillRun: Sendable {
    let seed: UInt64
    var verdict = Convergence.Verdict()
    var kills = 0
    var killsDuringPush = 0
    var killsDuringPull = 0
    var requests = 0
    var integrityFailures: [String] = []

    static func run(seed: UInt64, kills: Int) async throws -> ServerKillRun {
        var run = ServerKillRun(seed: seed)
        let directory = TempDirectory("server-kill-\(seed)")
        let server = ServerProcess(data: directory.sub("data"))
        try await server.start()
        defer { server.kill() }
        var replicas = [DrillReplica]()
        for index in 0..<3 {
            let link = try await server.link(user: "agent\(index)", role: "field")
            replicas.append(try await DrillReplica.enrol(link, name: "r\(index)", in: directory.sub("r\(index)")))
        }
        var random = SeededRandom(seed: seed)
        let ledger = try await withThrowingTaskGroup(of: WriteLedger.self) { group in
            for (index, replica) in replicas.enumerated() {
                group.addTask { try await Self.work(replica, seed: seed &+ UInt64(index + 1) &* 0x2000_0003) }
            }
            for _ in 0..<kills {
                try await Task.sleep(for: .milliseconds(random.int(20...300)))
                // Wait for a request in flight (a push or a pull, as the seed picks), then kill
                // within a few milliseconds of it, so the kill lands inside the exchange.
                let wantPush = random.chance(0.5)
                let waitUntil = ContinuousClock.now + .seconds(5)
                var busy: (pushes: Int, pulls: Int) = (0, 0)
                while ContinuousClock.now < waitUntil {
                    busy = replicas.reduce((0, 0)) { ($0.0 + $1.inFlight.pushes, $0.1 + $1.inFlight.pulls) }
                    if wantPush ? busy.pushes > 0 : busy.pulls > 0 { break }
                    try await Task.sleep(for: .milliseconds(1))
                }
                if random.chance(0.7) { try await Task.sleep(for: .milliseconds(random.int(0...10))) }
                busy = replicas.reduce((0, 0)) { ($0.0 + $1.inFlight.pushes, $0.1 + $1.inFlight.pulls) }
                server.kill()
                run.kills += 1
                if busy.pushes > 0 { run.killsDuringPush += 1 }
                if busy.pulls > 0 { run.killsDuringPull += 1 }
                let check = try server.integrityCheck()
                if check != ["ok"] { run.integrityFailures.append("after kill \(run.kills): \(check)") }
                try await server.start()
            }
            group.cancelAll()
            var all = WriteLedger()
            for try await ledger in group { all.merge(ledger) }
            return all
        }
        try await Convergence.settle(replicas, by: .now + .seconds(120))
        let auditor = try await DrillReplica.enrol(
            try await server.link(user: "auditor", role: "field"), name: "auditor", in: directory.sub("auditor"))
        try await auditor.syncUntilDrained(by: .now + .seconds(60))
        run.verdict = Convergence.verdict(
            replicas: replicas.map { ($0.name, $0.store.state) }, server: auditor.store.state, ledger: ledger)
        run.requests = replicas.reduce(0) { $0 + $1.requests }
        for replica in replicas { await replica.close() }
        await auditor.close()
        return run
    }

    /// Writes a few changes and syncs, over and over, until cancelled; a sync the dead server
    /// breaks is simply tried again (the server comes back).
    static func work(_ replica: DrillReplica, seed: UInt64) async throws -> WriteLedger {
        var workload = Workload(seed: seed)
        while !Task.isCancelled {
            for _ in 0..<workload.random.int(1...8) { try workload.step(replica.store) }
            let sent = workload.unsynced.count
            do {
                try await replica.sync()
                workload.markSynced(upTo: sent)
            } catch {
                if Task.isCancelled { break }
                guard RetryPolicy.canHeal(error) else { throw error }
            }
            do { try await Task.sleep(for: .milliseconds(workload.random.int(10...150))) } catch { break }
        }
        return workload.ledger
    }
}
