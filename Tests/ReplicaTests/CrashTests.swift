import CRDT
import CRDTTestSupport
import Domain
import DomainTestSupport
import Foundation
import LocalStorage
import Replica
import ReplicaTestSupport
import StoreSupport
import SystemTestSupport
import Testing

/// SIGKILL a process writing to a store at random moments; after each restart everything it
/// reported committed is there exactly once, the outbox holds exactly the unacknowledged
/// changes, and `PRAGMA integrity_check` is ok.
@Suite("Crash safety")
struct CrashTests {
    static var kills: Int { FuzzSettings.isLong ? 500 : 50 }

    static var tortureBinary: String { ChildProcess.builtProduct("store-torture") }

    @Test func killedWriterLosesNothing() async throws {
        let directory = TempDirectory("crash")
        let store = directory.sub("store")
        var rng = SeededRandom(seed: FuzzSettings.replaySeed ?? 0xC4A5)
        var reported = Set<String>()
        var reportedLines = 0
        for round in 0..<Self.kills {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: Self.tortureBinary)
            process.arguments = [store, String(round * 1_000_000)]
            let output = Pipe()
            process.standardOutput = output
            process.standardError = FileHandle.nullDevice
            try process.run()
            // Open takes a few ms; kill anywhere from before the first write to well into a run.
            try await Task.sleep(for: .milliseconds(rng.int(2...120)))
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            for line in text.split(separator: "\n") where line.hasPrefix("committed ") {
                reported.insert(String(line.split(separator: " ")[2]))
                reportedLines += 1
            }

            let reopened = try LocalStore.open(in: store)
            #expect(try reopened.integrityCheck() == ["ok"], "round \(round)")
            let state = reopened.state
            for id in reported {
                let entity = EntityID(text: id)!
                #expect(
                    state.contact(entity) != nil || state.note(entity) != nil,
                    "round \(round): \(id) was reported but is missing")
            }
            // Exactly once: every entity is created by exactly one outbox change, and nothing
            // was pushed, so the outbox holds every change.
            let outbox = try reopened.pendingChanges()
            var creations = [EntityID: Int]()
            for change in outbox.map(\.change) {
                for id in change.contacts.keys { creations[id, default: 0] += 1 }
                for id in change.notes.keys { creations[id, default: 0] += 1 }
            }
            #expect(creations.values.allSatisfy { $0 == 1 }, "round \(round): an entity was written twice")
            #expect(creations.count == state.entityCount, "round \(round): outbox and state disagree")
            #expect(Set(creations.keys.map(\.text)).isSuperset(of: reported))
        }
        #expect(reportedLines == reported.count, "an entity was reported twice")
        #expect(reported.count > Self.kills, "the writer should have committed more than one change per round")
        print("crash test: \(Self.kills) SIGKILLs, \(reported.count) reported commits, all present exactly once")

        // The outbox drains exactly once to a server.
        let reopened = try LocalStore.open(in: store)
        let transport = InProcessTransport(ledger: TenantLedger(epoch: ServerEpoch(rawValue: 1)))
        transport.wall = SyncEngine.systemWall()  // the writer stamped with the real clock
        _ = try await SyncEngine(store: reopened, transport: transport).sync()
        #expect(try reopened.outboxCount() == 0)
        #expect(transport.ledger.state == reopened.state, "the server differs from the replica")
        #expect(transport.ledger.sequence == UInt64(reopened.state.entityCount))
    }
}
