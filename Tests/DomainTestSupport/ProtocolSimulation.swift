import CRDT
import CRDTTestSupport
import Domain

#if canImport(Glibc)
import Glibc
#endif

/// The domain convergence fuzzer: 3–5 replicas and a server ledger exchange the real protocol
/// messages (as encoded bytes) over a network that drops, duplicates, delays and reorders
/// them, while the replicas make random edits: creates, edits, deletes, restores, notes,
/// schedule moves and cancellations, and resolutions of whatever conflicts they see (merges of
/// duplicates included). Sometimes the server is restored from an old snapshot (a new epoch).
///
/// After the network heals and everyone syncs until quiet: every replica's state equals the
/// server's, every replica lists the same conflicts in the same order, and every change that
/// was acknowledged — indeed every change any replica made — is in the server's state.
public struct ProtocolSimulation {
    enum Request {
        case push(PushBatch)
        case pull(PullRequest)
    }

    struct InFlight {
        let replica: Int
        let request: Request
        let bytes: [UInt8]
        let sentAt: UInt64
    }

    struct Response {
        let replica: Int
        let request: Request
        let bytes: [UInt8]
        let sentAt: UInt64
    }

    public let seed: UInt64
    private var rng: SeededRandom
    private var ledger: TenantLedger
    private var replicas: [SimulatedReplica] = []
    private var waiting: [Bool] = []
    private var toServer: [InFlight] = []
    private var toReplicas: [Response] = []
    private var snapshot: TenantLedger?
    private var wall: UInt64 = 1_764_000_000_000
    private var written: [TenantState] = []
    public private(set) var stats = [String: Int]()

    static let users = ["jana", "petr", "eva", "tomas", "lucie"]
    static let phones = ["601111111", "602222222", "603333333", "604444444", "605555555", "606666666"]
    static let names = ["Jana", "Petr", "Eva", "Zoë", "Ondřej Dvořák", "Acme s.r.o."]

    public init(seed: UInt64) {
        self.seed = seed
        rng = SeededRandom(seed: seed)
        ledger = TenantLedger(epoch: ServerEpoch(rawValue: seed | 1))
        for index in 0..<rng.int(3...5) {
            let replica = SimulatedReplica(
                replica: ReplicaID(UInt64(index + 1) << 40 | seed & 0xFFFF), user: Self.users[index],
                skew: Int64(rng.int(-30_000...30_000)))
            replicas.append(replica)
            waiting.append(false)
        }
    }

    /// Runs the simulation; returns the violations found (empty when it passed).
    public mutating func run() -> [String] {
        for _ in 0..<rng.int(30...120) { step() }
        heal()
        return check()
    }

    private mutating func count(_ key: String) { stats[key, default: 0] += 1 }

    /// KRALIKI_TRACE=1 prints every step (with KRALIKI_SEED, to see how a seed fails).
    private let tracing = getenv("KRALIKI_TRACE") != nil

    private func trace(_ line: @autoclosure () -> String) {
        if tracing { print("  [\(wall)] " + line()) }
    }

    private mutating func step() {
        wall += UInt64(rng.int(1...2_000))
        switch rng.int(0...19) {
        case 0...7: operate(rng.int(0...replicas.count - 1))
        case 8...10: startExchange(rng.int(0...replicas.count - 1))
        case 11...13: deliverToServer()
        case 14...16: deliverToReplica()
        case 17:
            // A client timeout: it stops waiting; a late answer may still come and is stale then.
            let index = rng.int(0...replicas.count - 1)
            if waiting[index] {
                waiting[index] = false
                count("timeouts")
                trace("\(replicas[index].user) timed out")
            }
        case 18:
            if snapshot == nil || rng.chance(0.5) { snapshot = ledger }
        default:
            // Rarely, a disaster: the server is restored from its last snapshot.
            if let old = snapshot, rng.chance(0.2) {
                ledger = old
                ledger.startNewEpoch(ServerEpoch(rawValue: rng.next() | 1))
                count("restores")
                trace("server restored, epoch \(ledger.epoch), sequence \(ledger.sequence)")
            }
        }
    }

    // MARK: Edits

    private mutating func operate(_ index: Int) {
        let state = replicas[index].state
        let contacts = state.contacts.sortedKeys
        let notes = state.notes.sortedKeys
        let entries = state.schedule.sortedKeys
        let rng = self.rng
        var local = rng
        var choice = local.int(0...13)
        let phone = local.pick(Self.phones)
        let name = local.pick(Self.names)
        let contact = contacts.isEmpty ? nil : local.pick(contacts)
        let note = notes.isEmpty ? nil : local.pick(notes)
        let entry = entries.isEmpty ? nil : local.pick(entries)
        let hour = Int64(local.int(8...12))
        let length = Int64(local.int(1...2))
        let assignee = local.pick(Self.users.prefix(3))
        let conflicts = state.conflicts()
        let conflict = conflicts.isEmpty ? nil : local.pick(conflicts)
        let resolutionSeed = local.next()
        if conflict != nil && local.chance(0.3) { choice = 13 }
        self.rng = local
        let day: Int64 = 1_764_028_800_000  // a midnight, UTC
        do {
            let delta: TenantState
            switch choice {
            case 0, 1:
                delta = try replicas[index].write(wall: wall) { s, c throws(ValidationError) in
                    try s.createContact(ContactDraft(name: name, phones: [phone], tags: ["t\(phone.last!)"]), c)
                }
            case 2, 3:
                guard let contact else { return }
                var edit = ContactEdit()
                if resolutionSeed % 2 == 0 { edit.name = name } else { edit.company = name }
                if resolutionSeed % 3 == 0 { edit.addPhones = [phone] }
                if resolutionSeed % 5 == 0 { edit.removeTags = ["t\(phone.last!)"] }
                delta = try replicas[index].write(wall: wall) { s, c throws(ValidationError) in
                    try s.editContact(contact, edit, c)
                }
            case 4:
                guard let contact else { return }
                delta = try replicas[index].write(wall: wall) { s, c throws(ValidationError) in
                    try s.delete(.contact, contact, c)
                }
            case 5:
                guard let contact else { return }
                delta = try replicas[index].write(wall: wall) { s, c throws(ValidationError) in
                    try s.restore(.contact, contact, c)
                }
            case 6:
                guard let contact else { return }
                delta = try replicas[index].write(wall: wall) { s, c throws(ValidationError) in
                    try s.addNote(NoteDraft(contact: contact, text: "Called about \(name)"), c)
                }
            case 7:
                guard let note else { return }
                delta = try replicas[index].write(wall: wall) { s, c throws(ValidationError) in
                    try s.editNote(note, text: "Edited: \(name)", c)
                }
            case 8:
                delta = try replicas[index].write(wall: wall) { s, c throws(ValidationError) in
                    try s.addScheduleEntry(
                        ScheduleDraft(
                            title: "Visit \(name)", start: day + hour * 3_600_000,
                            end: day + (hour + length) * 3_600_000,
                            assignees: [assignee], contact: contact), c)
                }
            case 9:
                guard let entry else { return }
                let interval = try Interval(
                    start: day + hour * 3_600_000, end: day + (hour + length) * 3_600_000, timeZone: "Europe/Prague")
                delta = try replicas[index].write(wall: wall) { s, c throws(ValidationError) in
                    try s.moveScheduleEntry(entry, to: interval, c)
                }
            case 10:
                guard let entry else { return }
                delta = try replicas[index].write(wall: wall) { s, c throws(ValidationError) in
                    try s.setScheduleStatus(entry, resolutionSeed % 2 == 0 ? .cancelled : .done, c)
                }
            case 11:
                guard let note else { return }
                delta = try replicas[index].write(wall: wall) { s, c throws(ValidationError) in
                    try s.delete(.note, note, c)
                }
            default:
                guard let conflict else { return }
                let resolution = Self.resolution(
                    for: conflict, seed: resolutionSeed, contacts: contacts, hour: hour, day: day)
                delta = try replicas[index].write(wall: wall) { s, c throws(ValidationError) in
                    try s.resolve(conflict.id, resolution, c)
                }
                count("resolutions")
            }
            written.append(delta)
            count("writes")
            trace("\(replicas[index].user) wrote #\(replicas[index].nextSequence - 1) (choice \(choice))")
        } catch {
            // A refused command (editing what another replica deleted, say) changes nothing.
            count("refused")
        }
    }

    static func resolution(
        for conflict: Conflict, seed: UInt64, contacts: [EntityID], hour: Int64, day: Int64
    ) -> Resolution {
        let flip = seed % 2 == 0
        switch conflict.kind {
        case .concurrentValues:
            if conflict.field == "lifecycle" {
                return flip ? .restore : .pick(Int(seed % UInt64(conflict.sides.count)))
            }
            return flip ? .pick(Int(seed % UInt64(conflict.sides.count))) : .value("Resolved \(seed % 7)")
        case .deleteVsEdit: return flip ? .restore : .confirmDelete
        case .doubleBooking:
            switch seed % 3 {
            case 0: return .accept
            case 1: return .cancel(entry: conflict.entities[Int(seed % 2)].id)
            default:
                return .moveTo(
                    entry: conflict.entities[0].id,
                    try! Interval(
                        start: day + (hour + 6) * 3_600_000, end: day + (hour + 7) * 3_600_000, timeZone: "UTC"))
            }
        case .probableDuplicate: return flip ? .mergeInto(conflict.entities[Int(seed % 2)].id) : .notDuplicate
        case .orphanNote:
            return flip || contacts.isEmpty ? .accept : .reattach(contacts[Int(seed % UInt64(contacts.count))])
        }
    }

    // MARK: The network

    private mutating func startExchange(_ index: Int) {
        guard !waiting[index] else { return }
        let sentAt = replicas[index].localTime(wall)
        if let batch = replicas[index].session.nextPush(outbox: replicas[index].outbox), rng.chance(0.6) {
            toServer.append(InFlight(replica: index, request: .push(batch), bytes: batch.encodedBlob(), sentAt: sentAt))
            trace(
                "\(replicas[index].user) sends push \(batch.changes.map(\.localSequence)) epoch \(String(describing: batch.epoch))"
            )
        } else {
            let request = replicas[index].session.nextPull()
            toServer.append(
                InFlight(replica: index, request: .pull(request), bytes: request.encodedBlob(), sentAt: sentAt))
        }
        waiting[index] = true
    }

    private mutating func deliverToServer() {
        guard !toServer.isEmpty else { return }
        let position = rng.int(0...toServer.count - 1)  // any order: reordering
        let message = toServer[position]
        if rng.chance(0.1) {
            toServer.remove(at: position)  // lost on the way in
            waiting[message.replica] = false
            count("requests dropped")
            return
        }
        if rng.chance(0.1) {
            count("requests duplicated")  // delivered now and again later
        } else {
            toServer.remove(at: position)
        }
        let responseBytes: [UInt8]
        switch message.request {
        case .push:
            let batch = try! PushBatch(blob: message.bytes)
            trace("server gets push \(batch.changes.map(\.localSequence)) from \(replicas[message.replica].user)")
            responseBytes = ledger.receive(batch, wall: wall).encodedBlob()
        case .pull:
            let request = try! PullRequest(blob: message.bytes)
            responseBytes = ledger.respond(to: request, wall: wall).encodedBlob()
        }
        if rng.chance(0.1) {
            // Committed on the server, but the answer is lost.
            waiting[message.replica] = false
            count("responses dropped")
            return
        }
        toReplicas.append(
            Response(replica: message.replica, request: message.request, bytes: responseBytes, sentAt: message.sentAt))
    }

    private mutating func deliverToReplica() {
        guard !toReplicas.isEmpty else { return }
        let message = toReplicas.remove(at: rng.int(0...toReplicas.count - 1))
        let index = message.replica
        let receivedAt = replicas[index].localTime(wall)
        switch message.request {
        case .push(let batch):
            let ack = try! PushAck(blob: message.bytes)
            trace(
                "\(replicas[index].user) gets ack through \(ack.processedThrough) epoch \(ack.epoch) for \(batch.changes.map(\.localSequence)) (session epoch \(String(describing: replicas[index].session.epoch)))"
            )
            let actions = replicas[index].session.receive(
                ack, for: batch, sentAt: message.sentAt, receivedAt: receivedAt)
            replicas[index].perform(actions, wall: wall)
        case .pull(let request):
            let response = try! PullResponse(blob: message.bytes)
            trace(
                "\(replicas[index].user) gets pull answer: \(response.changes.count) changes, next \(response.nextCursor), epoch \(response.epoch) for cursor \(request.cursor) (session cursor \(replicas[index].session.pullCursor))"
            )
            let before = replicas[index].session
            let actions = replicas[index].session.receive(
                response, for: request, sentAt: message.sentAt, receivedAt: receivedAt)
            // A crash between receiving and applying: the session's new value and its actions are
            // made durable in one transaction, so the crash loses both, like a lost response.
            if rng.chance(0.05) {
                replicas[index].session = before
                count("crashed before apply")
            } else {
                replicas[index].perform(actions, wall: wall)
            }
        }
        waiting[index] = false
    }

    private mutating func heal() {
        toServer.removeAll()
        toReplicas.removeAll()
        for _ in 0..<3 {
            for index in replicas.indices {
                wall += 100
                replicas[index].sync(with: &ledger, wall: wall)
            }
        }
    }

    // MARK: Checks

    private mutating func check() -> [String] {
        var problems = [String]()
        let server = ledger.state
        stats["open conflicts at the end", default: 0] += server.conflicts().count
        for (index, replica) in replicas.enumerated() where replica.state != server {
            problems.append("replica \(index) (\(replica.user)) differs from the server after syncing until quiet")
        }
        let expected = server.conflicts()
        for (index, replica) in replicas.enumerated() {
            let listed = replica.state.conflicts()
            if listed != expected {
                problems.append("replica \(index) lists \(listed.map(\.id)), the server \(expected.map(\.id))")
            }
        }
        for replica in replicas {
            for change in replica.acknowledged where server.merging(change) != server {
                problems.append("an acknowledged change of \(replica.user) is missing from the server")
            }
        }
        for change in written where server.merging(change) != server {
            problems.append("a change made on a replica never reached the server")
        }
        for replica in replicas where !replica.rejected.isEmpty {
            // With clocks within the drift bound, a refusal means a stamp was pushed ahead of
            // real time: the clock-offset estimate went wrong.
            problems.append(
                "the server refused \(replica.rejected.count) changes of \(replica.user): \(replica.rejected[0].reason)"
            )
        }
        for replica in replicas where !replica.outbox.isEmpty {
            problems.append("\(replica.user)'s outbox still holds \(replica.outbox.count) changes")
        }
        return problems
    }
}
