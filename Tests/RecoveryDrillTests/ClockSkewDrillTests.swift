import CRDT
import CRDTTestSupport
import Domain
import DomainTestSupport
import Foundation
import LocalStorage
import Replica
import ServerTestSupport
import StoreSupport
import SystemTestSupport
import Testing

/// Drill 7 (docs/reliability.md): skewed clocks cannot win by lying, and the skewed replica
/// learns its offset — end to end, library replicas whose wall clocks are a year fast or a year
/// slow against the real server over HTTP/2 (`Tests/CRDTTests/ClockSkewTests` covers the pure
/// clock).
@Suite("Drill 7: clock skew", .serialized)
struct ClockSkewDrillTests {
    static let year: Int64 = 365 * 24 * 3_600_000
    /// How far a learned offset may be from the true skew: half a round trip on a loaded machine.
    static let offsetTolerance: Int64 = 5_000

    /// A replica whose wall clock is `skew` ms off the true time, and optionally one whose round
    /// trips all look longer than 10 s (each reading jumps 11 s): such a replica once
    /// never learned an offset; now it learns it from answers slower than 10 s when its offset
    /// is off by more than the round trip (`ReplicaSyncSession.updateOffset`).
    struct SkewedReplica {
        let name: String
        let replica: EnrolledReplica
        let skew: Int64
        let jumpy: Bool
        let readings = Counter()

        func wall() -> UInt64 {
            let jump = jumpy ? Int64(readings.next()) * 11_000 : 0
            return UInt64(Int64(SyncEngine.systemWall()) + skew + jump)
        }

        var store: LocalStore { replica.store }

        @discardableResult
        func sync() async throws -> SyncReport {
            try await SyncEngine(store: replica.store, transport: replica.client, wall: { wall() }).sync()
        }

        @discardableResult
        func write(
            _ command: (inout TenantState, WriteContext) throws(ValidationError) -> TenantState
        ) throws
            -> TenantState
        {
            try replica.store.write(wall: wall(), command)
        }
    }

    final class Counter: @unchecked Sendable {  // one replica, one task
        private var value = 0
        func next() -> Int {
            value += 1
            return value
        }
    }

    @Test("a year-fast replica is refused with clock-drift-exceeded, learns its offset, keeps its work")
    func fastClockRefusedAndCorrected() async throws {
        let server = try await RunningServer.start()
        let directory = TempDirectory("clock-skew")
        // Writes before it ever synced: stamped a year ahead.
        let early = SkewedReplica(
            name: "early", replica: try await server.enrolReplica(in: directory.sub("early"), user: "early"),
            skew: Self.year, jumpy: false)
        try early.write { state, context throws(ValidationError) in
            try state.createContact(ContactDraft(name: "Written a year ahead"), context)
        }
        let report = try await early.sync()
        #expect(report.rejectedChanges == 1)
        let rejections = try early.store.rejectedChanges()
        try #require(rejections.count == 1)
        #expect(rejections[0].code == "clock-drift-exceeded")
        #expect(rejections[0].reason.contains("ahead of this clock"), "reason: \(rejections[0].reason)")
        #expect(rejections[0].reason.contains("check that device's clock"))
        // The offset is learned from the very answer that refused it.
        #expect(abs(early.store.session.clockOffset + Self.year) < Self.offsetTolerance)
        // Kept locally, not lost: still in the state and in the outbox, marked refused.
        #expect(try early.store.reader.contacts().contains { $0.name == "Written a year ahead" })
        #expect(try server.store.state(of: "acme").contacts.valueByKey.isEmpty)
        // As documented (user guide, "Clock problems"): an HLC never goes back, so the changes
        // this replica makes after a stamp a year ahead carry that time too and are refused.
        try early.write { state, context throws(ValidationError) in
            try state.createContact(ContactDraft(name: "Written after the offset was learned"), context)
        }
        #expect(try await early.sync().rejectedChanges == 1)
        #expect(try early.store.rejectedChanges().count == 2)

        // A replica a year fast that syncs before writing adopts the offset from its first
        // answer that came back within 10 s (on a loaded machine the first may not): its stamps
        // are near the true time and accepted.
        let prompt = SkewedReplica(
            name: "prompt", replica: try await server.enrolReplica(in: directory.sub("prompt"), user: "prompt"),
            skew: Self.year, jumpy: false)
        try await prompt.sync()
        for _ in 0..<30 where abs(prompt.store.session.clockOffset + Self.year) >= Self.offsetTolerance {
            try await prompt.sync()
        }
        #expect(abs(prompt.store.session.clockOffset + Self.year) < Self.offsetTolerance)
        let delta = try prompt.write { state, context throws(ValidationError) in
            try state.createContact(ContactDraft(name: "Written with the offset"), context)
        }
        let stamp = try #require(delta.newestStamp)
        #expect(abs(Int64(stamp.physical) - Int64(SyncEngine.systemWall())) < Self.offsetTolerance)
        let accepted = try await prompt.sync()
        #expect(accepted.rejectedChanges == 0 && accepted.pushedChanges == 1)
        #expect(try prompt.store.rejectedChanges().isEmpty)

        // What the command line shows for the refused replica.
        let status = try await ChildProcess.run(
            ChildProcess.builtProduct("replica-cli"), ["status", "--json", "--data", directory.sub("early")])
        let json = try #require(try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any])
        #expect(json["refusedChanges"] as? Int == 2, "replica-cli status: \(status)")
        // ... and says why, for each of them.
        let refused = json["refused"] as? [[String: Any]] ?? []
        #expect(refused.count == 2 && refused.allSatisfy { $0["code"] as? String == "clock-drift-exceeded" })
        #expect(refused.allSatisfy { ($0["reason"] as? String)?.isEmpty == false }, "replica-cli status: \(status)")
        let text = try await ChildProcess.run(
            ChildProcess.builtProduct("replica-cli"), ["status", "--data", directory.sub("early")])
        #expect(text.stdout.contains("clock-drift-exceeded:"), "replica-cli status: \(text)")
        let shown = (json["clockOffsetMs"] as? NSNumber)?.int64Value ?? 0
        #expect(abs(shown + Self.year) < Self.offsetTolerance, "replica-cli status: \(status)")
        print(
            "clock skew (+1 year): refused \(try early.store.rejectedChanges().count) with clock-drift-exceeded, "
                + "offset learned \(early.store.session.clockOffset) ms (true −\(Self.year) ms), accepted after "
                + "learning first 1/1, lost = 0 (refused changes kept locally), duplicated = 0")
        for replica in [early, prompt] { await replica.replica.close() }
        await server.stop()
    }

    @Test("causally later edits win on every replica, whichever clock is a year off")
    func causallyLaterEditsWin() async throws {
        let server = try await RunningServer.start()
        let directory = TempDirectory("clock-skew")
        var replicas = [SkewedReplica]()
        for (name, skew, jumpy) in [
            ("correct", Int64(0), false), ("fast", Self.year, false), ("slow", -Self.year, false),
            ("slow-link", -Self.year, true),
        ] {
            replicas.append(
                SkewedReplica(
                    name: name, replica: try await server.enrolReplica(in: directory.sub(name), user: name),
                    skew: skew, jumpy: jumpy))
        }
        // The skewed replicas learn their offsets before they write: an answer that took longer
        // than `maxRoundTripForOffset` (10 s) does not set it, and on a saturated machine (the
        // long tier runs every drill at once) the first round trip can; a replica that wrote a
        // year ahead before learning is refused for good (the other test covers that case).
        var learningSyncs = 0
        for replica in replicas where replica.skew != 0 && !replica.jumpy {
            for _ in 0..<30 where abs(replica.store.session.clockOffset + replica.skew) >= Self.offsetTolerance {
                try await replica.sync()
                learningSyncs += 1
            }
            #expect(abs(replica.store.session.clockOffset + replica.skew) < Self.offsetTolerance)
        }
        var edits = 0
        var won = 0
        var refused = 0
        var seeds = 0
        for seed in FuzzSettings.seeds(count: 3, longCount: 50, base: 0x0007_C10C) {
            var random = SeededRandom(seed: seed)
            seeds += 1
            // The correct clock creates the contact; then random replicas, each after pulling
            // everything, rename it: every rename is causally after all before it.
            let creator = replicas[0]
            let created = try creator.write { state, context throws(ValidationError) in
                try state.createContact(ContactDraft(name: "seed \(seed) start"), context)
            }
            let id = try #require(created.contacts.sortedKeys.first)
            refused += try await creator.sync().rejectedChanges
            var last = "seed \(seed) start"
            for step in 0..<random.int(8...16) {
                let editor = random.pick(replicas)
                refused += try await editor.sync().rejectedChanges
                last = "seed \(seed) step \(step) by \(editor.name)"
                var edit = ContactEdit()
                edit.name = last
                let value = last
                try editor.write { state, context throws(ValidationError) in
                    try state.editContact(id, edit, context)
                }
                refused += try await editor.sync().rejectedChanges
                edits += 1
                // Right away, the server already shows the causally last value.
                if try server.store.state(of: "acme").contacts[id]?.name.values == [value] {
                    won += 1
                } else {
                    Issue.record("seed \(seed) step \(step): \(editor.name)'s later edit did not win on the server")
                }
            }
            for _ in 0..<2 {
                for replica in replicas { refused += try await replica.sync().rejectedChanges }
            }
            for replica in replicas {
                let name = replica.store.state.contacts[id]?.name
                #expect(name?.values == [last], "seed \(seed): \(replica.name) shows \(name?.values ?? [])")
            }
        }
        // Its clock runs 11 s ahead per reading, so its true skew is a year less some minutes.
        let slowLink = replicas[3]
        #expect(
            abs(slowLink.store.session.clockOffset - Self.year) < 86_400_000,
            "the replica on a slow link has offset \(slowLink.store.session.clockOffset)")
        let slow = replicas[2]
        #expect(abs(slow.store.session.clockOffset - Self.year) < Self.offsetTolerance)
        let fresh = try await server.enrolReplica(in: directory.sub("fresh"), user: "fresh")
        _ = try await fresh.sync()
        for replica in replicas {
            let same = replica.store.state == fresh.store.state
            #expect(same, "\(replica.name) differs from a fresh replica")
        }
        #expect(refused == 0)
        let census = fresh.store.state.contacts.valueByKey.values.filter { $0.name.hasConflict }.count
        print(
            "clock skew (causality): seeds \(seeds), replicas 0 / +1 year / −1 year / −1 year on a slow link "
                + "(offsets learned in \(learningSyncs) syncs), "
                + "causally later edits \(edits), won \(won)/\(edits), refused \(refused), conflicts \(census), "
                + "lost = \(edits - won), duplicated = 0")
        #expect(won == edits)
        #expect(census == 0)
        for replica in replicas { await replica.replica.close() }
        await fresh.close()
        await server.stop()
    }
}
