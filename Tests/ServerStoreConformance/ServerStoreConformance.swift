import CRDT
import CRDTTestSupport
import Domain
import DomainTestSupport
import Foundation
import SyncServer

/// What every `ServerStore` implementation must do, as checks that run against a fresh store.
/// A test target runs each check on each implementation (`ServerStoreConformanceTests` runs
/// them on the embedded SQLite store); a new store passes them all before the server uses it.
///
/// The central check is differential: seeded random pushes — retries, foreign writes, deletes —
/// must be answered exactly as the in-memory reference `TenantLedger` answers them, and pulls
/// from any cursor within any limits must return exactly what it returns.
public struct ServerStoreConformance: Sendable, CustomStringConvertible {
    public let name: String
    let run: @Sendable (any ServerStore) async throws -> Void

    public var description: String { name }

    /// Runs the check on a fresh, empty store.
    public func check(_ store: any ServerStore) async throws { try await run(store) }

    /// Every check.
    public static let all: [ServerStoreConformance] = [
        ServerStoreConformance(name: "ledger matches TenantLedger (seeds 1-3)") { store in
            for seed in 1...3 as ClosedRange<UInt64> { try await ledgerMatchesReference(store, seed: seed) }
        },
        ServerStoreConformance(name: "a group applies in order, tenants apart", run: groupsApplyInOrder),
        ServerStoreConformance(name: "concurrent pushers and pullers: no pull skips a change", run: pullsNeverSkip),
        ServerStoreConformance(name: "enrolment, revocation and codes", run: devicesAndCodes),
        ServerStoreConformance(name: "the cursor is the newest pull's", run: activityNeverGoesBack),
        ServerStoreConformance(name: "operations: writable, backups, size, collection", run: operations),
    ]

    static let wall: UInt64 = 1_764_000_000_000

    // MARK: Ledgers

    /// Random commands on three replicas, as push batches (some repeated, as retries are).
    public static func batches(seed: UInt64) -> [PushBatch] {
        var rng = SeededRandom(seed: seed)
        var replicas = (1...3).map { SimulatedReplica(replica: ReplicaID(UInt64($0)), user: "user\($0)") }
        var batches = [PushBatch]()
        for step in 0..<60 {
            let index = rng.int(0...2)
            let wall = Self.wall + UInt64(step) * 1_000
            let contacts = replicas[index].state.contacts.sortedKeys
            let name = rng.pick(["Jana", "Petr", "Eva", "Zoë"])
            let phone = rng.pick(["601111111", "602222222", "603333333"])
            let choice = rng.int(0...5)
            _ = try? replicas[index].write(wall: wall) { s, c throws(ValidationError) in
                switch choice {
                case 0, 1: return try s.createContact(ContactDraft(name: name, phones: [phone]), c)
                case 2 where !contacts.isEmpty:
                    var edit = ContactEdit()
                    edit.name = name
                    return try s.editContact(contacts[step % contacts.count], edit, c)
                case 3 where !contacts.isEmpty:
                    return try s.addNote(NoteDraft(contact: contacts[step % contacts.count], text: "note \(step)"), c)
                case 4 where !contacts.isEmpty:
                    return try s.delete(.contact, contacts[step % contacts.count], c)
                default:
                    return try s.addScheduleEntry(ScheduleDraft(title: name, start: 1_000, end: 2_000 + Int64(step)), c)
                }
            }
            if rng.chance(0.3), let batch = replicas[index].session.nextPush(outbox: replicas[index].outbox) {
                batches.append(batch)
                if rng.chance(0.3) { batches.append(batch) }  // a retry
                // Let the replica see what others did, through a throwaway ledger of everything so far.
                var everything = TenantLedger(epoch: ServerEpoch(rawValue: 1))
                for earlier in batches { _ = everything.receive(earlier, wall: wall) }
                replicas[index].state.merge(everything.state)
            }
        }
        return batches
    }

    static func ledgerMatchesReference(_ store: any ServerStore, seed: UInt64) async throws {
        let tenant = "acme-\(seed)"
        var reference = TenantLedger(epoch: try await store.epoch(of: tenant))
        var rng = SeededRandom(seed: seed)
        var pending = Self.batches(seed: seed)[...]
        while !pending.isEmpty {
            // Groups of one to three pushes, as group commit makes them.
            let group = Array(pending.prefix(rng.int(1...3)))
            pending = pending.dropFirst(group.count)
            let receipts = try await store.receive(
                group.map { TenantPush(batch: $0, tenant: tenant) }, wall: Self.wall + 100_000)
            try expect(
                receipts.count == group.count, "seed \(seed): \(receipts.count) receipts for \(group.count) pushes")
            for (batch, receipt) in zip(group, receipts) {
                let expected = reference.receive(batch, wall: Self.wall + 100_000)
                try expect(receipt.ack == expected, "seed \(seed): the acknowledgement differs from TenantLedger's")
                try expect(receipt.sequence == reference.sequence, "seed \(seed): receipt sequence \(receipt.sequence)")
            }
        }
        try expect(try await store.sequence(of: tenant) == reference.sequence, "seed \(seed): sequences differ")
        try expect(try await store.state(of: tenant) == reference.state, "seed \(seed): states differ")
        let head = try await store.head(of: tenant)
        try expect(
            head?.epoch == reference.epoch && head?.sequence == reference.sequence,
            "seed \(seed): head \(String(describing: head))")
        for (cursor, maxChanges, maxBytes) in [
            (0, 1_000, 1 << 20), (0, 7, 1 << 20), (5, 3, 1 << 20), (0, 100, 300), (UInt64.max, 10, 10),
        ]
            as [(UInt64, Int, Int)]
        {
            let request = PullRequest(
                epoch: reference.epoch, cursor: cursor, maxChanges: maxChanges, maxBytes: maxBytes)
            let answer = try await store.respond(to: request, tenant: tenant, wall: 0)
            try expect(
                answer == reference.respond(to: request, wall: 0),
                "seed \(seed): pull from \(cursor) (\(maxChanges) changes, \(maxBytes) bytes) differs")
        }
        try expect(try await store.state(of: "never-\(seed)").isBottom, "a tenant never written has state")
        try expect(try await store.head(of: "never-\(seed)") == nil, "a tenant never written has a head")
        let otherEpoch = try await store.epoch(of: "other-\(seed)")
        try expect(try await otherEpoch != store.epoch(of: tenant), "two tenants share an epoch")
    }

    /// A push creating one contact named `name`, written by `replica` at `wall`.
    static func creation(_ name: String, replica: ReplicaID, localSequence: UInt64, wall: UInt64) throws -> PushBatch {
        var state = TenantState()
        var clock = HybridLogicalClock(replica: replica)
        let change = try state.createContact(
            ContactDraft(name: name),
            WriteContext(
                author: Author(user: "u\(replica.rawValue)", device: replica), stamp: clock.now(wall: wall),
                settings: DomainSettings()))
        return PushBatch(
            replica: replica, epoch: nil, changes: [PushChange(localSequence: localSequence, change: change)])
    }

    static func groupsApplyInOrder(_ store: any ServerStore) async throws {
        let pushes = try (1...6).map { index in
            TenantPush(
                batch: try creation("C\(index)", replica: ReplicaID(UInt64(index)), localSequence: 1, wall: Self.wall),
                tenant: index % 2 == 0 ? "even" : "odd")
        }
        let receipts = try await store.receive(pushes, wall: Self.wall + 1_000)
        try expect(receipts.map(\.sequence) == [1, 1, 2, 2, 3, 3], "receipts \(receipts.map(\.sequence))")
        try expect(receipts.allSatisfy { $0.ack.rejected.isEmpty }, "a valid push was refused")
        try expect(try await store.sequence(of: "odd") == 3, "the odd tenant's sequence")
        try expect(try await store.sequence(of: "even") == 3, "the even tenant's sequence")
        try expect(try await store.state(of: "odd").contacts.count == 3, "odd tenant holds other contacts")
        // The same batch again is a retry: acknowledged, nothing new.
        let again = try await store.receive([pushes[0]], wall: Self.wall + 2_000)
        try expect(again[0].ack.rejected.isEmpty && again[0].sequence == 3, "a retried push changed the ledger")
    }

    /// Gap checker: pushers create contacts (each change its own entity, so every sequence stays
    /// in the log) while pullers pull in a loop; every answer must hold exactly the sequences
    /// after its cursor up to its next cursor, none missing.
    static func pullsNeverSkip(_ store: any ServerStore) async throws {
        let tenant = "gaps"
        let epoch = try await store.epoch(of: tenant)
        let pushers = 4
        let perPusher = 60
        try await withThrowingTaskGroup(of: Void.self) { group in
            for pusher in 0..<pushers {
                group.addTask {
                    for index in 0..<perPusher {
                        let batch = try creation(
                            "P\(pusher)-\(index)", replica: ReplicaID(UInt64(pusher + 1)),
                            localSequence: UInt64(index + 1), wall: Self.wall + UInt64(index))
                        _ = try await store.receive(
                            [TenantPush(batch: batch, tenant: tenant)], wall: Self.wall + 10_000)
                    }
                }
            }
            for _ in 0..<2 {
                group.addTask {
                    var cursor: UInt64 = 0
                    var seen = 0
                    while seen < pushers * perPusher {
                        let answer = try await store.respond(
                            to: PullRequest(epoch: epoch, cursor: cursor, maxChanges: 17, maxBytes: 1 << 20),
                            tenant: tenant, wall: Self.wall)
                        let sequences = answer.changes.map(\.sequence)
                        let expected = Array((cursor + 1)..<(cursor + 1 + UInt64(sequences.count)))
                        try expect(sequences == expected, "after cursor \(cursor) a pull returned \(sequences)")
                        try expect(
                            answer.nextCursor == (sequences.last ?? cursor) || sequences.isEmpty,
                            "next cursor \(answer.nextCursor) after \(sequences)")
                        cursor = max(cursor, sequences.last ?? cursor)
                        seen = Int(cursor)
                        if sequences.isEmpty { await Task.yield() }
                    }
                }
            }
            try await group.waitForAll()
        }
        try expect(try await store.sequence(of: tenant) == UInt64(pushers * perPusher), "changes lost")
    }

    // MARK: Devices

    static func devicesAndCodes(_ store: any ServerStore) async throws {
        let code = try await store.createEnrolmentCode(
            tenant: "acme", user: "jana", role: .admin, wall: Self.wall, lifetimeMs: 3_600_000, actor: "test",
            rejoinReplica: nil)
        try expect(code.tenant == "acme" && code.user == "jana" && code.role == .admin, "code \(code)")
        try expect(try await store.pendingCodes(tenant: "acme", wall: Self.wall).count == 1, "one pending code")
        try expect(try await store.pendingCodes(tenant: "globex", wall: Self.wall).isEmpty, "codes leak across tenants")
        let jana = try await store.enrol(code: code.code, wall: Self.wall + 1, rejoining: nil)
        try expect(jana.tenant == "acme" && jana.role == .admin, "enrolment \(jana.tenant) \(jana.role)")
        try expect(try await store.pendingCodes(tenant: "acme", wall: Self.wall + 2).isEmpty, "a used code is pending")
        do {
            _ = try await store.enrol(code: code.code, wall: Self.wall + 2, rejoining: nil)
            throw ConformanceFailure("a code enrolled twice")
        } catch is DeviceError {}
        let found = try await store.device(token: jana.token)
        try expect(
            found?.id == jana.deviceId && found?.isRevoked == false, "the token finds \(String(describing: found))")
        try expect(try await store.device(token: "kst_unknown") == nil, "an unknown token finds a device")
        try expect(try await store.isRevoked(device: jana.deviceId) == false, "a fresh device is revoked")
        try expect(try await store.users(tenant: "acme").map(\.name) == ["jana"], "users")
        try expect(try await store.devices(tenant: "acme").map(\.id) == [jana.deviceId], "devices")

        let petrCode = try await store.createEnrolmentCode(
            tenant: "acme", user: "petr", role: .field, wall: Self.wall, lifetimeMs: 3_600_000, actor: jana.deviceId,
            rejoinReplica: nil)
        let petr = try await store.enrol(code: petrCode.code, wall: Self.wall + 3, rejoining: nil)
        let otherCode = try await store.createEnrolmentCode(
            tenant: "globex", user: "eva", role: .agent, wall: Self.wall, lifetimeMs: 3_600_000, actor: "test",
            rejoinReplica: nil)
        do {
            _ = try await store.revoke(device: petr.deviceId, tenant: "globex", actor: "x", wall: Self.wall + 4)
            throw ConformanceFailure("a device was revoked through another tenant")
        } catch is DeviceError {}
        do {
            let id = try await store.pendingCodes(tenant: "globex", wall: Self.wall + 4).first {
                $0.user == otherCode.user
            }
            _ = try await store.revokeCode(id: id?.id ?? "", tenant: "acme", actor: jana.deviceId, wall: Self.wall + 4)
            throw ConformanceFailure("another tenant's code was withdrawn")
        } catch is DeviceError {}
        let revoked = try await store.revoke(
            device: petr.deviceId, tenant: "acme", actor: jana.deviceId, wall: Self.wall + 5)
        try expect(revoked.isRevoked, "the revoke's answer is not revoked")
        try expect(try await store.isRevoked(device: petr.deviceId), "a revoked device is not revoked")
        try expect(try await store.device(token: petr.token)?.isRevoked == true, "the token finds an unrevoked device")
        try expect(try await store.allDevices().count == 2, "all devices")
        try expect(try await store.auditLog(tenant: "acme").isEmpty == false, "nothing in the audit log")
        try expect(
            try await store.auditLog(tenant: "globex").allSatisfy { !$0.detail.contains(petr.deviceId) }, "audit leaks")
    }

    /// The cursor is the newest pull's: an older pull recorded late does not move it back, a
    /// newer pull from an earlier cursor (re-bootstrap) does; last seen only moves forward.
    static func activityNeverGoesBack(_ store: any ServerStore) async throws {
        let code = try await store.createEnrolmentCode(
            tenant: "acme", user: "eva", role: .agent, wall: Self.wall, lifetimeMs: 3_600_000, actor: "test",
            rejoinReplica: nil)
        let eva = try await store.enrol(code: code.code, wall: Self.wall, rejoining: nil)
        func cursor() async throws -> (cursor: UInt64?, seen: UInt64?) {
            let device = try await store.devices(tenant: "acme").first { $0.id == eva.deviceId }
            return (device?.cursor, device?.lastSeenMs)
        }
        try await store.record(activity: [eva.deviceId: DeviceActivity(lastSeenMs: Self.wall + 10)])
        try expect(try await cursor() == (0, Self.wall + 10), "a device that never pulled")
        try await store.record(
            activity: [eva.deviceId: DeviceActivity(lastSeenMs: Self.wall + 20, lastPullMs: Self.wall + 20, cursor: 10)]
        )
        try await store.record(
            activity: [eva.deviceId: DeviceActivity(lastSeenMs: Self.wall + 15, lastPullMs: Self.wall + 15, cursor: 5)])
        try expect(try await cursor() == (10, Self.wall + 20), "an older pull recorded late")
        try await store.record(
            activity: [eva.deviceId: DeviceActivity(lastSeenMs: Self.wall + 30, lastPullMs: Self.wall + 30, cursor: 3)])
        try expect(try await cursor() == (3, Self.wall + 30), "a newer pull from cursor 3")
    }

    // MARK: Operations

    static func operations(_ store: any ServerStore) async throws {
        try await store.checkWritable()
        let backup = try await store.lastBackup()
        try expect(backup == nil, "a fresh store has a backup")
        _ = try await store.receive(
            [
                TenantPush(
                    batch: try creation("A", replica: ReplicaID(9), localSequence: 1, wall: Self.wall), tenant: "ops")
            ],
            wall: Self.wall)
        try expect(await store.storedBytes() > 0, "a store holding data has no size")
        let collection = try await store.collectGarbage(retention: 0, wall: Self.wall + 1_000)
        try expect(collection.tombstones == 0, "a live contact was collected")
        try expect(try await store.state(of: "ops").contacts.count == 1, "collection lost a contact")
    }

    static func expect(_ condition: Bool, _ message: @autoclosure () -> String) throws {
        guard condition else { throw ConformanceFailure(message()) }
    }
}

/// A conformance check that did not hold, with what was found.
public struct ConformanceFailure: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
