import CRDT
import Domain
import DomainTestSupport
import Foundation
import LocalStorage
import Replica
import StoreSupport
import SystemTestSupport
import Testing

/// The durability setting the store asks for is the one SQLite runs with. GRDB's WAL setup sets
/// `synchronous = NORMAL` after the store's own setup ran; a store that said FULL was running
/// NORMAL (fsync only at checkpoints) until the power-loss drill (issue #7) showed the loss.
@Suite("Durability settings")
struct DurabilityTests {
    @Test("a FULL store fsyncs every commit; NORMAL is NORMAL; both survive a reopen")
    func synchronousLevels() throws {
        let directory = TempDirectory("durability")
        for (durability, level) in [(Durability.full, 2), (.normal, 1)] {
            let path = directory.sub("\(durability)")
            let identity = ReplicaIdentity(replica: ReplicaID(7), user: "jana", tenant: "acme")
            let options = StoreOptions(durability: durability)
            let created = try LocalStore.create(in: path, identity: identity, options: options)
            #expect(try created.synchronousLevel() == level, "\(durability) after create")
            let reopened = try LocalStore.open(in: path, options: options)
            #expect(try reopened.synchronousLevel() == level, "\(durability) after open")
        }
    }
}
