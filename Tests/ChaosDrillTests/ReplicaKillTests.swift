import CRDTTestSupport
import Domain
import DomainTestSupport
import DrillSupport
import Foundation
import LocalStorage
import Replica
import StoreSupport
import SystemTestSupport
import Testing

/// Drill 3 (issue #7): replica kill. A real `replica-cli sync` process is SIGKILLed at ≥ 50
/// random moments while it pushes its outbox and pulls another replica's changes through a
/// ``FaultProxy``. A third of the kills come at a random moment of the sync; a third just
/// after the server committed the push (the drill watches the server, and the proxy holds the
/// answer back 1.5 s so the replica has not read it yet); a third a little later, while it pulls.
/// Each kill is then classified from durable state — the replica's file and the server's — as
/// *before the server committed* (mid-push, or before it), *after the server committed but
/// before the replica read the answer*, *mid-pull apply*, or *after the sync*. At the end the
/// outbox has drained exactly once: every write is on the server once, and the replica equals
/// the server.
@Suite("Drill 3: replica kill")
struct ReplicaKillTests {
    /// When a run means to kill (the phase it hit is read afterwards from durable state).
    enum Target: CaseIterable {
        case anyMoment, afterCommit, afterCommitThenPull
    }

    enum Phase: String, CaseIterable {
        case beforeCommit = "before-commit"
        case committedUnread = "committed-unread"
        case midPull = "mid-pull"
        case afterSync = "after-sync"
    }

    @Test("SIGKILL replica-cli sync ≥ 50 times mid-push, after commit, mid-pull: drains exactly once")
    func replicaKill() async throws {
        let seeds = FuzzSettings.seeds(count: 1, longCount: 10, base: 0x4E9C_0300)
        var figures = DrillFigures(drill: "replica-kill")
        var phases: [Phase: Int] = [:]
        var syncs = 0
        var connections = 0
        var failures = [String]()
        for seed in seeds {
            let run = try await ReplicaKillRun.run(seed: seed, kills: 50)
            let phaseText = Phase.allCases.map { "\($0.rawValue) \(run.phases[$0, default: 0])" }
            print("replica-kill seed \(seed): \(run.verdict); kills \(run.kills): \(phaseText.joined(separator: ", "))")
            figures.seeds.append(seed)
            figures.kills += run.kills
            figures.requests += run.requests
            figures.add(run.verdict)
            phases.merge(run.phases, uniquingKeysWith: +)
            syncs += run.victimSyncs
            connections += run.victimConnections
            failures += run.problems.map { "seed \(seed): \($0)" }
            if !run.verdict.isClean { failures.append("seed \(seed) (replay: KRALIKI_SEED=\(seed)): \(run.verdict)") }
        }
        figures.extra = Phase.allCases.map { ("kills-\($0.rawValue)", "\(phases[$0, default: 0])") }
        figures.extra += [("victim-syncs", "\(syncs)"), ("victim-connections", "\(connections)")]
        print(figures)
        #expect(failures.isEmpty, "\(failures.joined(separator: "\n"))")
        #expect(figures.kills >= 50 * seeds.count)
        // The three moments the issue names must each have been hit.
        #expect(
            phases[.beforeCommit, default: 0] > 0 && phases[.committedUnread, default: 0] > 0
                && phases[.midPull, default: 0] > 0, "\(phases)")
    }
}

/// One seed of drill 3.
struct ReplicaKillRun: Sendable {
    let seed: UInt64
    var verdict = Convergence.Verdict()
    var kills = 0
    var phases: [ReplicaKillTests.Phase: Int] = [:]
    /// Requests of the in-process feeder and auditor (the victim's are not countable from
    /// outside its process: its syncs and connections are counted instead).
    var requests = 0
    var victimSyncs = 0
    var victimConnections = 0
    var problems: [String] = []

    static let cli = ChildProcess.builtProduct("replica-cli")

    static func run(seed: UInt64, kills: Int) async throws -> ReplicaKillRun {
        var run = ReplicaKillRun(seed: seed)
        var random = SeededRandom(seed: seed)
        let directory = TempDirectory("replica-kill-\(seed)")
        let server = ServerProcess(data: directory.sub("data"))
        try await server.start()
        defer { server.kill() }
        let proxy = try await FaultProxy.start(upstreamPort: server.port, seed: seed)
        // The victim: a replica-cli replica whose server URL is the proxy's.
        let victim = directory.sub("victim")
        let enrolment = try await server.link(user: "petr", role: "field", through: proxy.url).description
        let initialised = try await ChildProcess.run(cli, ["--data", victim, "init", enrolment, "--json"])
        guard initialised.status == 0 else { throw DrillFailure("replica-cli init failed: \(initialised)") }
        // The feeder makes changes for the victim to pull; the auditor reads the server's state.
        let feeder = try await DrillReplica.enrol(
            try await server.link(user: "eva", role: "field"), name: "feeder", in: directory.sub("feeder"))
        let auditor = try await DrillReplica.enrol(
            try await server.link(user: "auditor", role: "field"), name: "auditor", in: directory.sub("auditor"))
        var victimWork = Workload(seed: seed ^ 0x7151)
        var feederWork = Workload(seed: seed ^ 0xFEED)
        var estimate: Duration = .milliseconds(1_500)
        var attempts = 0
        while run.kills < kills && attempts < kills * 4 {
            attempts += 1
            // Local work on the victim (the CLI is not running: one owner of the file at a time).
            let outbox: [PushChange]
            do {
                let store = try LocalStore.open(in: victim)
                for _ in 0..<random.int(1...20) { try victimWork.step(store) }
                outbox = try store.pendingChanges()
            }
            // Changes for it to pull: often none, sometimes more than one pull batch's worth.
            for _ in 0..<random.int(0...1) * random.int(0...250) { try feederWork.step(feeder.store) }
            try await feeder.syncUntilDrained(by: .now + .seconds(60))
            feederWork.markSynced(upTo: feederWork.unsynced.count)
            // The outbox's changes the server lacks now: the ones this sync's push commits. (An
            // earlier kill after a commit leaves changes in the outbox that the server holds.)
            try await auditor.syncUntilDrained(by: .now + .seconds(60))
            let before = auditor.store.state
            let fresh = outbox.filter { before.merging($0.change) != before }
            // Where to strike, as the seed picks: at a random moment of the sync, or deliberately
            // just after the server committed the push (its answers held back 1.5 s by the proxy,
            // the kill comes while they are on their way), or a little after the commit (pulling).
            let target = random.pick(ReplicaKillTests.Target.allCases)
            proxy.set(
                FaultProxy.Faults(
                    downstream: .init(latency: .milliseconds(target == .afterCommit ? 1_500 : random.int(0...60)))))
            let started = ContinuousClock.now
            let sync = try KillableProcess.start(cli, ["--data", victim, "sync", "--json"])
            switch target {
            case .anyMoment:
                let limit =
                    estimate.components.seconds * 1_000 + estimate.components.attoseconds / 1_000_000_000_000_000
                try await Task.sleep(for: .milliseconds(random.int(0...Int(limit))))
            case .afterCommit, .afterCommitThenPull:
                // The auditor reads the server straight (not through the proxy) until it holds the
                // victim's outbox; with a 10 s bound, after which the kill comes anyway.
                let until = ContinuousClock.now + .seconds(10)
                while sync.isRunning && ContinuousClock.now < until {
                    try await auditor.syncUntilDrained(by: .now + .seconds(30))
                    let server = auditor.store.state
                    if fresh.contains(where: { server.merging($0.change) == server }) { break }
                    try await Task.sleep(for: .milliseconds(10))
                }
                if target == .afterCommitThenPull { try await Task.sleep(for: .milliseconds(random.int(0...400))) }
            }
            sync.kill()
            let status = await sync.wait()
            if !sync.wasKilled {
                // It finished first: its duration teaches the random kills when to strike.
                if target == .anyMoment { estimate = (estimate + (ContinuousClock.now - started)) / 2 }
                if status != 0 { run.problems.append("an unkilled sync failed: exit \(status) \(sync.stderr)") }
                victimWork.markSynced(upTo: victimWork.unsynced.count)
                continue
            }
            run.kills += 1
            proxy.set(.none)
            let phase = try await classify(victim: victim, fresh: fresh, auditor: auditor, run: &run)
            run.phases[phase, default: 0] += 1
            if phase == .midPull || phase == .afterSync { victimWork.markSynced(upTo: victimWork.unsynced.count) }
        }
        // The last sync runs to its end: the outbox must drain and the replica catch up.
        proxy.set(.none)
        let final = try await ChildProcess.run(cli, ["--data", victim, "sync", "--json"])
        if final.status != 0 { run.problems.append("the final sync failed: \(final)") }
        let store = try LocalStore.open(in: victim)
        if try store.outboxCount() != 0 { run.problems.append("the outbox did not drain: \(try store.outboxCount())") }
        try await auditor.syncUntilDrained(by: .now + .seconds(60))
        try await feeder.sync()
        var ledger = victimWork.ledger
        ledger.merge(feederWork.ledger)
        run.verdict = Convergence.verdict(
            replicas: [("victim", store.state), ("feeder", feeder.store.state)], server: auditor.store.state,
            ledger: ledger)
        run.requests = feeder.requests + auditor.requests
        run.victimSyncs = attempts + 1
        run.victimConnections = proxy.stats.connections
        await feeder.close()
        await auditor.close()
        await proxy.stop()
        return run
    }

    /// Which moment the kill hit, read from durable state: the victim's outbox and cursor, and
    /// whether the server holds the writes that were in that outbox.
    static func classify(
        victim: String, fresh: [PushChange], auditor: DrillReplica, run: inout ReplicaKillRun
    ) async throws -> ReplicaKillTests.Phase {
        let store = try LocalStore.open(in: victim)
        let integrity = try store.integrityCheck()
        if integrity != ["ok"] { run.problems.append("the victim's store after a kill: \(integrity)") }
        let outbox = try store.pendingChanges()
        let cursor = store.session.pullCursor
        try await auditor.syncUntilDrained(by: .now + .seconds(60))
        let server = auditor.store.state
        if !outbox.isEmpty {
            // The server committed this sync's push when it now holds a change it lacked before
            // the sync (merging it changes nothing there): only this replica made those changes.
            let committed = fresh.contains { server.merging($0.change) == server }
            return committed ? .committedUnread : .beforeCommit
        }
        return cursor < auditor.store.session.pullCursor ? .midPull : .afterSync
    }
}
