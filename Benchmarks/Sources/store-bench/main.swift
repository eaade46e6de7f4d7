// Replica store benchmarks for issue #4, each next to raw SQLite doing the same rows in the
// same run, on files in a temporary directory. Release builds only:
//   swift run -c release --package-path Benchmarks store-bench
import CRDT
import Domain
import Foundation
import GRDB
import GRDBSQLite
import LocalStorage
import Replica
import StoreSupport
import SyncServer

func seconds(_ body: () throws -> Void) rethrows -> Double {
    let start = ContinuousClock.now
    try body()
    let elapsed = ContinuousClock.now - start
    return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
}

func asyncSeconds(_ body: () async throws -> Void) async rethrows -> Double {
    let start = ContinuousClock.now
    try await body()
    let elapsed = ContinuousClock.now - start
    return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
}

/// One title edit of every contact of `state` (to "`title` N"), as push changes numbered from
/// `firstSequence`.
func titleEdits(
    of state: inout TenantState, by author: Author, clock: inout HybridLogicalClock, wall: UInt64,
    firstSequence: UInt64, title: String = "Title"
) throws -> [PushChange] {
    var changes = [PushChange]()
    for (index, id) in state.contacts.sortedKeys.enumerated() {
        var edit = ContactEdit()
        edit.title = "\(title) \(index)"
        let context = WriteContext(author: author, stamp: clock.now(wall: wall), settings: DomainSettings())
        changes.append(
            PushChange(localSequence: firstSequence + UInt64(index), change: try state.editContact(id, edit, context)))
    }
    return changes
}

/// User + system CPU time of this process, seconds.
func cpuSeconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec)
        + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
}

/// A value the raw baselines bind through SQLite's C API, as the store's `RowWriter` does
/// (GRDB's `execute(arguments:)` builds an array of boxed values per row: measured against it,
/// the titles' schema floor ran at 85,000 changes/s instead of ~100,000, which made the store
/// look closer to its floor than it is). Like the store, texts and blobs are copied
/// into one scratch buffer per statement and bound from there (`SQLITE_STATIC`), so SQLite does
/// not allocate a copy of each.
protocol RawParameter {
    var rawBytes: Int { get }
    func bind(to statement: OpaquePointer, at index: Int32, scratch: inout UnsafeMutableRawBufferPointer) -> Int32
}
/// SQLite reads the bytes where they are until the statement is reset and its bindings cleared.
nonisolated func staticBytes() -> sqlite3_destructor_type {
    unsafeBitCast(OpaquePointer(bitPattern: 0), to: sqlite3_destructor_type.self)
}
/// Copies `bytes` to the front of `scratch` (non-empty: at least one byte reserved) and moves past them.
func rawCopy(_ bytes: UnsafeRawBufferPointer, _ scratch: inout UnsafeMutableRawBufferPointer) -> UnsafeMutableRawPointer
{
    let target = scratch.baseAddress!
    if !bytes.isEmpty { target.copyMemory(from: bytes.baseAddress!, byteCount: bytes.count) }
    scratch = UnsafeMutableRawBufferPointer(rebasing: scratch[max(bytes.count, 1)...])
    return target
}
extension String: RawParameter {
    var rawBytes: Int { utf8.count + 1 }
    func bind(to statement: OpaquePointer, at index: Int32, scratch: inout UnsafeMutableRawBufferPointer) -> Int32 {
        var text = self
        return text.withUTF8 { bytes in
            let start = rawCopy(UnsafeRawBufferPointer(bytes), &scratch)
            return sqlite3_bind_text(
                statement, index, start.assumingMemoryBound(to: CChar.self), Int32(bytes.count), staticBytes())
        }
    }
}
extension Data: RawParameter {
    var rawBytes: Int { count + 1 }
    func bind(to statement: OpaquePointer, at index: Int32, scratch: inout UnsafeMutableRawBufferPointer) -> Int32 {
        withUnsafeBytes { sqlite3_bind_blob(statement, index, rawCopy($0, &scratch), Int32($0.count), staticBytes()) }
    }
}
extension Int64: RawParameter {
    var rawBytes: Int { 0 }
    func bind(to statement: OpaquePointer, at index: Int32, scratch: inout UnsafeMutableRawBufferPointer) -> Int32 {
        sqlite3_bind_int64(statement, index, self)
    }
}
extension Optional: RawParameter where Wrapped: RawParameter {
    var rawBytes: Int { self?.rawBytes ?? 0 }
    func bind(to statement: OpaquePointer, at index: Int32, scratch: inout UnsafeMutableRawBufferPointer) -> Int32 {
        switch self {
        case .some(let value): value.bind(to: statement, at: index, scratch: &scratch)
        case .none: sqlite3_bind_null(statement, index)
        }
    }
}
extension Statement {
    /// Binds `parameters` (exactly the statement's) and steps it to its end.
    func runRaw<each P: RawParameter>(_ parameters: repeat each P) {
        let handle = sqliteStatement
        var bytes = 0
        for parameter in repeat each parameters { bytes += parameter.rawBytes }
        withUnsafeTemporaryAllocation(byteCount: bytes, alignment: 1) { buffer in
            var scratch = buffer
            sqlite3_reset(handle)
            var index: Int32 = 0
            for parameter in repeat each parameters {
                index += 1
                precondition(parameter.bind(to: handle, at: index, scratch: &scratch) == SQLITE_OK)
            }
            precondition(
                sqlite3_step(handle) == SQLITE_DONE, String(cString: sqlite3_errmsg(sqlite3_db_handle(handle))))
            sqlite3_reset(handle)
            sqlite3_clear_bindings(handle)
        }
    }
}

func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
func percentile(_ values: [Double], _ p: Double) -> Double {
    values.sorted()[min(values.count - 1, Int(Double(values.count) * p))]
}
func micro(_ value: Double) -> String { String(format: "%.0f µs", value * 1e6) }
func fmt(_ value: Double, _ digits: Int = 2) -> String { String(format: "%.\(digits)f", value) }

let root = NSTemporaryDirectory() + "kraliki-store-bench-\(UUID().uuidString)"
try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
defer { try? FileManager.default.removeItem(atPath: root) }
let wall = UInt64(Date().timeIntervalSince1970 * 1000)
let contactCount = 100_000
let commits = 2_000

func draft(_ index: Int) -> ContactDraft {
    ContactDraft(
        name: "Contact \(index) Nováková", company: "Acme \(index % 500) s.r.o.", title: "Sales lead",
        phones: ["+4206\(String(10_000_000 + index))"], emails: ["c\(index)@example.cz"], tags: ["vip"])
}

func rawQueue(_ name: String, _ durability: Durability) throws -> DatabaseQueue {
    var configuration = Configuration()
    configuration.journalMode = .wal
    let synchronous = durability == .full ? "FULL" : "NORMAL"
    let queue = try DatabaseQueue(path: root + "/\(name).sqlite", configuration: configuration)
    // After GRDB's WAL setup, which sets NORMAL (set before it, this baseline would run NORMAL
    // while saying FULL, as the stores once did: docs/reliability.md, power loss).
    try queue.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA synchronous = \(synchronous)") }
    let level = try queue.read { db in try Int.fetchOne(db, sql: "PRAGMA synchronous") }
    precondition(level == (durability == .full ? 2 : 1), "raw baseline runs synchronous \(level ?? -1)")
    return queue
}

/// STORE_BENCH_ONLY=edit|import|sync|ingest runs one section (for profiling); `ingest` is the server
/// store alone (issue #5), run only when asked for.
let only = ProcessInfo.processInfo.environment["STORE_BENCH_ONLY"]
func runs(_ section: String) -> Bool { only == nil || only == section }

/// STORE_BENCH_PERF_CTL=FIFO profiles one phase: the benchmark writes `enable` and `disable`
/// into perf's control FIFO around the phase named by STORE_BENCH_PERF_PHASE (`import`,
/// `initial`, `apply` or `titles`), so `perf record --control fifo:FIFO -D -1` records that phase alone
/// (docs/performance.md shows the whole command).
func profiling(_ phase: String, _ command: String) {
    let environment = ProcessInfo.processInfo.environment
    guard let fifo = environment["STORE_BENCH_PERF_CTL"], environment["STORE_BENCH_PERF_PHASE"] == phase,
        let handle = FileHandle(forWritingAtPath: fifo)
    else { return }
    handle.write(Data((command + "\n").utf8))
    try? handle.close()
}

/// The malloc this process runs on: tcmalloc when Benchmarks/Package.swift found it installed
/// (as replica-cli does), else glibc's. Section 5's server store runs here too, so with tcmalloc;
/// the `sync-server` process allocates with glibc's malloc.
let allocator = dlsym(nil, "tc_version") != nil ? "tcmalloc (libtcmalloc-minimal4)" : "glibc malloc"
print("# store-bench — \(contactCount) contacts; single commits: \(commits) each; allocator: \(allocator)")

// MARK: 1. A single durable field edit vs a raw single-row commit

for durability in Durability.allCases where runs("edit") {
    let raw = try rawQueue("raw-\(durability)", durability)
    try raw.write { db in
        try db.execute(sql: "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
        for id in 0..<1_000 { try db.execute(sql: "INSERT INTO t VALUES (?, 'x')", arguments: [id]) }
    }
    var rawTimes = [Double]()
    for index in 0..<commits {
        rawTimes.append(
            try seconds {
                try raw.write { db in
                    try db.execute(
                        sql: "UPDATE t SET v = ? WHERE id = ?", arguments: ["value \(index)", index % 1_000])
                }
            })
    }
    let store = try LocalStore.create(
        in: root + "/edit-\(durability)", identity: ReplicaIdentity(replica: ReplicaID(1), user: "bench", tenant: "t"),
        options: StoreOptions(durability: durability))
    let ids = try store.importContacts((0..<1_000).map(draft), wall: wall)
    var storeTimes = [Double]()
    for index in 0..<commits {
        var edit = ContactEdit()
        edit.title = "Title \(index)"
        let id = ids[index % ids.count]
        storeTimes.append(
            try seconds {
                try store.write(wall: wall + UInt64(index)) { s, c throws(ValidationError) in
                    try s.editContact(id, edit, c)
                }
            })
    }
    print(
        "single edit, synchronous=\(durability.rawValue.uppercased()): store p50 \(micro(median(storeTimes))), p99 \(micro(percentile(storeTimes, 0.99))); "
            + "raw single-row commit p50 \(micro(median(rawTimes))), p99 \(micro(percentile(rawTimes, 0.99))); ratio p50 \(fmt(median(storeTimes) / median(rawTimes)))×"
    )
}

// MARK: 2. Bulk import of 100,000 contacts in one transaction

if only == "edit" { exit(0) }

// MARK: STORE_BENCH_ONLY=ingest — the server store alone: creations, then single-field edits

if only == "ingest" {
    let server = try ServerDatabase.open(in: root + "/ingest-server")
    let replica = ReplicaID(9)
    let author = Author(user: "bench", device: replica)
    var clock = HybridLogicalClock(replica: replica)
    var state = TenantState()
    /// `checked`: as the HTTP server does it, the pusher's ownership of every write checked.
    func timedIngest(_ label: String, _ changes: [PushChange], by pusher: Author = author, checked: Bool = false) throws
    {
        let batches = stride(from: 0, to: changes.count, by: 200).map {
            PushBatch(replica: pusher.device, epoch: nil, changes: Array(changes[$0..<min($0 + 200, changes.count)]))
        }
        let now = UInt64(Date().timeIntervalSince1970 * 1000)
        var acks = [Double]()
        let cpuBefore = cpuSeconds()
        let total = try seconds {
            for batch in batches {
                acks.append(
                    try seconds {
                        let push = TenantPush(batch: batch, tenant: "t", author: checked ? pusher : nil)
                        let ack = try server.receive([push], wall: now)[0].ack
                        precondition(ack.rejected.isEmpty, "\(ack.rejected.prefix(1))")
                    })
            }
        }
        // CPU time is steadier than wall time on a shared machine: it is what to compare A/B.
        let cpu = cpuSeconds() - cpuBefore
        print(
            "server store ingest, \(label): \(fmt(Double(changes.count) / total, 0)) changes/s; "
                + "ack p50 \(fmt(median(acks) * 1000, 1)) ms, p99 \(fmt(percentile(acks, 0.99) * 1000, 1)) ms per 200; "
                + "CPU \(fmt(cpu / Double(changes.count) * 1e6, 1)) µs per change")
    }
    var creations = [PushChange]()
    for index in 0..<contactCount {
        let context = WriteContext(author: author, stamp: clock.now(wall: wall), settings: DomainSettings())
        creations.append(
            PushChange(localSequence: UInt64(index + 1), change: try state.createContact(draft(index), context)))
    }
    try timedIngest("\(contactCount) contact creations", creations)
    // Serving them: pulls from cursor 0 as a fresh replica makes them (1,000 changes each).
    var pulled = 0
    var request = PullRequest(epoch: nil, cursor: 0, maxChanges: 1_000, maxBytes: 4 << 20)
    let pullCPU = cpuSeconds()
    let pullSeconds = try seconds {
        while true {
            let response = try server.respond(to: request, tenant: "t", wall: wall)
            pulled += response.changes.count
            _ = response.encodedBlob()
            if !response.hasMore { break }
            request = PullRequest(
                epoch: response.epoch, cursor: response.nextCursor, maxChanges: 1_000, maxBytes: 4 << 20)
        }
    }
    print(
        "server store pulls of all \(pulled) contacts, 1,000 per pull, encoded: \(fmt(Double(pulled) / pullSeconds, 0)) "
            + "changes/s; CPU \(fmt((cpuSeconds() - pullCPU) / Double(pulled) * 1e6, 1)) µs per change")
    let edits = try titleEdits(
        of: &state, by: author, clock: &clock, wall: wall + 1, firstSequence: UInt64(contactCount + 1))
    try timedIngest("\(contactCount) single-field edits", edits)
    // A colleague's edits of those contacts: each has seen another device's stamps, so the
    // server compares it with the stored record to check every write in it is the colleague's.
    let colleague = Author(user: "colleague", device: ReplicaID(10))
    var colleagueClock = HybridLogicalClock(replica: colleague.device)
    _ = try? colleagueClock.receive(state.newestStamp!, wall: wall + 2)
    // The check alone, in memory: merge and field comparison as the server does them, with and
    // without the ownership check, interleaved (CPU-bound; compare the two lines).
    do {
        let before = state  // what the server holds
        let probe = try titleEdits(
            of: &state, by: colleague, clock: &colleagueClock, wall: wall + 2, firstSequence: 1, title: "Probe")
        var found = 0
        for round in 0..<4 {
            let checked = round % 2 == 0
            let cpu = cpuSeconds()
            for change in probe {
                for (id, delta) in change.change.contacts.valueByKey {
                    let old = before.contacts[id]!
                    let after = old.merging(delta)
                    let changed = Contact.changedFields(touchedBy: delta, from: old, to: after)
                    if checked && delta.mayHoldForeignWrites(by: colleague) {
                        let writes = Contact.foreignWrites(
                            id: id, from: old, to: after, by: colleague, changed: changed)
                        found += writes.count
                    }
                }
            }
            print(
                "  merge + field comparison\(checked ? " + ownership check" : ""), in memory: "
                    + "\(fmt((cpuSeconds() - cpu) / Double(probe.count) * 1e6, 2)) µs CPU per change")
        }
        precondition(found == 0, "the colleague's own edits were found foreign")
    }
    for (round, checked) in [(3, true), (4, false)] {
        let edits = try titleEdits(
            of: &state, by: colleague, clock: &colleagueClock, wall: wall + UInt64(round),
            firstSequence: UInt64(round * contactCount), title: "Round \(round)")
        try timedIngest(
            "\(contactCount) edits by another device, ownership \(checked ? "checked" : "not checked")", edits,
            by: colleague, checked: checked)
    }
    exit(0)
}

let drafts = (0..<contactCount).map(draft)
// The raw baselines' keys and stamps, formatted before any clock starts: `String(format:)` costs
// about a microsecond a call on Linux, which the baselines would count as SQLite's time
// (it inflated the one-row import by about 0.2 s).
let rawIDs = (0..<contactCount).map { String(format: "%032x", $0) }
let rawStamps = (0..<contactCount).map { String(format: "%016x-0000000000000002", $0) }
let rawPullStamps = (0..<contactCount).map { String(format: "%016x-0000000000000004", contactCount + $0) }
let renamed = (0..<contactCount).map { "Renamed \($0)" }
// The new names of the remote renames (section 3), the same for the store and its schema floor:
// in an order unrelated to the IDs, so each rename moves an entry of the listing index to a
// random place. (Renames in near name order, or every contact renamed alike, keep the index's
// writes on a few pages: the cheapest renames there are, not a workload.)
let scatteredRenames = (0..<contactCount).map { String(format: "Renamed %06x", ($0 &* 7_919) % contactCount) }
let raw = try rawQueue("raw-bulk", .full)
try raw.write { db in
    try db.execute(
        sql: """
            CREATE TABLE contacts (id TEXT PRIMARY KEY, name TEXT NOT NULL, company TEXT, title TEXT, phone TEXT, email TEXT, tag TEXT)
            """)
}
let rawImport = try seconds {
    try raw.write { db in
        let statement = try db.makeStatement(sql: "INSERT INTO contacts VALUES (?, ?, ?, ?, ?, ?, ?)")
        for (index, d) in drafts.enumerated() {
            statement.runRaw(rawIDs[index], d.name, d.company, d.title, d.phones[0], d.emails[0], d.tags[0])
        }
    }
}
try raw.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE)") }
let rawBytes = (try FileManager.default.attributesOfItem(atPath: root + "/raw-bulk.sqlite")[.size] as? Int) ?? 0

let writer = try LocalStore.create(
    in: root + "/writer", identity: ReplicaIdentity(replica: ReplicaID(2), user: "bench", tenant: "t"))
profiling("import", "enable")
let storeImport = try seconds { try writer.importContacts(drafts, wall: wall) }
profiling("import", "disable")
print(
    "bulk import of \(contactCount) contacts in one transaction: store \(fmt(storeImport)) s; raw SQLite rows \(fmt(rawImport)) s; ratio \(fmt(storeImport / rawImport))×"
)

// The floor for this schema: raw SQLite writing the same rows the store writes for an import
// (contact row with the entity's blob, its indexes, phone, e-mail, tag, audit row, one outbox blob per
// 100 contacts) through prepared statements, no CRDT work. The store's ratio to this is its own
// overhead; this floor's ratio to the one-row baseline is what the schema's indexes cost.
let blobSize = try DatabaseQueue(path: root + "/writer/replica.sqlite").read { db in
    try Int.fetchOne(db, sql: "SELECT AVG(LENGTH(state)) FROM contacts") ?? 0
}
let schemaRaw = try rawQueue("raw-schema", .full)
try schemaRaw.writeWithoutTransaction { db in
    try db.execute(sql: "PRAGMA cache_size = -65536")
    let folder = URL(fileURLWithPath: "schema")
    for file in try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted() where file.hasSuffix(".sql") {
        try db.execute(sql: String(contentsOf: folder.appendingPathComponent(file), encoding: .utf8))
    }
}
let fakeBlob = Data((0..<blobSize).map { UInt8(truncatingIfNeeded: $0 &* 31) })
let outboxBlob = Data(repeating: 1, count: blobSize * 100)
let rawSchemaImport = try seconds {
    try schemaRaw.write { db in
        let contact = try db.makeStatement(
            sql:
                "INSERT INTO contacts (id, name, company, title, owner, status, address, lifecycle, updated_hlc, has_conflict, state) "
                + "VALUES (?, ?, ?, ?, NULL, NULL, NULL, 'active', ?, 0, ?)")
        let phone = try db.makeStatement(sql: "INSERT INTO contact_phones (contact_id, phone) VALUES (?, ?)")
        let email = try db.makeStatement(sql: "INSERT INTO contact_emails (contact_id, email) VALUES (?, ?)")
        let tag = try db.makeStatement(sql: "INSERT INTO contact_tags (contact_id, tag) VALUES (?, ?)")
        // The trail keyed by entity (schema 6), numbered from the counter the store reserves from.
        let audit = try db.makeStatement(
            sql:
                "INSERT INTO audit (entity_kind, entity_id, seq, at_hlc, user, device, action) "
                + "VALUES ('contact', ?, ?, ?, 'bench', '0000000000000002', 'import')")
        try db.execute(
            sql: "UPDATE store_meta SET value = CAST(value AS INTEGER) + ? WHERE key = 'audit_seq'",
            arguments: [drafts.count])
        let outbox = try db.makeStatement(sql: "INSERT INTO outbox (change, created_hlc) VALUES (?, ?)")
        for (index, d) in drafts.enumerated() {
            let id = rawIDs[index]
            let hlc = rawStamps[index]
            contact.runRaw(id, d.name, d.company, d.title, hlc, fakeBlob)
            phone.runRaw(id, d.phones[0])
            email.runRaw(id, d.emails[0])
            tag.runRaw(id, d.tags[0])
            audit.runRaw(id, Int64(index + 1), hlc)
            if index % 100 == 99 { outbox.runRaw(outboxBlob, hlc) }
        }
    }
}
print(
    "  raw SQLite writing the store's rows into the store's schema (\(blobSize)-byte blobs): \(fmt(rawSchemaImport)) s; "
        + "store ratio to it \(fmt(storeImport / rawSchemaImport))×; it is \(fmt(rawSchemaImport / rawImport))× the one-row baseline"
)

if only == "import" { exit(0) }

// MARK: 3. Initial sync to a fresh replica, then applying remote field changes

final class Transport: SyncTransport {
    var ledger: TenantLedger
    /// Time spent answering pulls (the in-process server's share of a sync).
    var pullSeconds = 0.0
    init(ledger: TenantLedger) { self.ledger = ledger }
    func push(_ batch: [UInt8]) async throws -> [UInt8] {
        ledger.receive(try PushBatch(blob: batch), wall: UInt64(Date().timeIntervalSince1970 * 1000)).encodedBlob()
    }
    func pull(_ request: [UInt8]) async throws -> [UInt8] {
        var response = [UInt8]()
        pullSeconds += try seconds {
            response = ledger.respond(
                to: try PullRequest(blob: request), wall: UInt64(Date().timeIntervalSince1970 * 1000)
            ).encodedBlob()
        }
        return response
    }
}
let transport = Transport(ledger: TenantLedger(epoch: ServerEpoch(rawValue: 1)))
let pushSeconds = try await asyncSeconds { _ = try await SyncEngine(store: writer, transport: transport).sync() }
let reader = try LocalStore.create(
    in: root + "/reader", identity: ReplicaIdentity(replica: ReplicaID(3), user: "reader", tenant: "t"))
var initial = SyncReport()
profiling("initial", "enable")
let initialSeconds = try await asyncSeconds {
    initial = try await SyncEngine(store: reader, transport: transport).sync()
}
profiling("initial", "disable")
print("push of \(contactCount) contacts from the writer (in-process server): \(fmt(pushSeconds)) s")
print(
    "initial sync of \(contactCount) contacts to a fresh replica (in-process server, no network), until queryable: "
        + "\(fmt(initialSeconds)) s (\(initial.pullBatches) pulls)")

// 100,000 field changes made elsewhere, arriving by pull.
var editor = transport.ledger.state
let editorAuthor = Author(user: "editor", device: ReplicaID(4))
var editorClock = HybridLogicalClock(replica: ReplicaID(4))
_ = try? editorClock.receive(transport.ledger.state.newestStamp!, wall: wall)
var edits = TenantState()
// Each contact gets a name of its own, in an order unrelated to the IDs, so each rename moves
// its entry in the listing index to a random place. (Not "Renamed " + the end of the ID: the end
// of an ID is its replica, so every contact would get the same name and the index would take the
// new entries in ID order, on a few pages: the cheapest renames there are, not a workload.)
for (index, id) in editor.contacts.sortedKeys.enumerated() {
    var edit = ContactEdit()
    edit.name = scatteredRenames[index]
    let context = WriteContext(author: editorAuthor, stamp: editorClock.now(wall: wall + 1), settings: DomainSettings())
    edits.merge(try editor.editContact(id, edit, context))
}
for chunk in edits.chunked(entitiesPerChange: 500) { transport.ledger.apply(chunk) }

/// The server's answers, recorded before the clock starts: what the replica does with them is
/// all that is timed. It may be used from two tasks at once, so the engine prepares the next
/// batch while it writes the current one, as it does over HTTP/2.
final class RecordedPulls: ConcurrentSyncTransport, @unchecked Sendable {
    let answers: [UInt64: [UInt8]]
    init(_ ledger: TenantLedger, for session: ReplicaSyncSession, wall: UInt64) {
        var answers = [UInt64: [UInt8]]()
        var request = session.nextPull()
        while true {
            let response = ledger.respond(to: request, wall: wall)
            answers[request.cursor] = response.encodedBlob()
            if !response.hasMore { break }
            request = PullRequest(
                epoch: response.epoch, cursor: response.nextCursor, maxChanges: request.maxChanges,
                maxBytes: request.maxBytes)
        }
        self.answers = answers
    }
    struct NotRecorded: Error {}
    func push(_ batch: [UInt8]) async throws -> [UInt8] { throw NotRecorded() }
    func pull(_ request: [UInt8]) async throws -> [UInt8] {
        guard let answer = answers[try PullRequest(blob: request).cursor] else { throw NotRecorded() }
        return answer
    }
}
// A copy of the reader applies the same batches one at a time (`pipelinesPulls` off), in the
// same run. (The file is checkpointed through the store's own connection: a TRUNCATE checkpoint
// by another connection changes `data_version`, and the store would read the whole file again
// at its next write, taking it for another process's commit — 1.1-1.3 s inside the timed apply.)
try reader.checkpoint()
try FileManager.default.createDirectory(atPath: root + "/reader-serial", withIntermediateDirectories: true)
try FileManager.default.copyItem(
    atPath: root + "/reader/replica.sqlite", toPath: root + "/reader-serial/replica.sqlite")
let serialReader = try LocalStore.open(in: root + "/reader-serial")
// And another copy applies them pipelined but each batch in its own transaction: the engine
// without joining the batches that arrive during a write.
try FileManager.default.createDirectory(atPath: root + "/reader-batchwise", withIntermediateDirectories: true)
try FileManager.default.copyItem(
    atPath: root + "/reader/replica.sqlite", toPath: root + "/reader-batchwise/replica.sqlite")
let batchwiseReader = try LocalStore.open(in: root + "/reader-batchwise")
let recorded = RecordedPulls(transport.ledger, for: reader.session, wall: UInt64(Date().timeIntervalSince1970 * 1000))
var applied = SyncReport()
profiling("apply", "enable")
let applySeconds = try await asyncSeconds { applied = try await SyncEngine(store: reader, transport: recorded).sync() }
profiling("apply", "disable")
var serialEngine = SyncEngine(store: serialReader, transport: recorded)
serialEngine.pipelinesPulls = false
let serialApplySeconds = try await asyncSeconds { _ = try await serialEngine.sync() }
precondition(serialReader.state.contacts.count == reader.state.contacts.count)
var batchwiseEngine = SyncEngine(store: batchwiseReader, transport: recorded)
batchwiseEngine.maxChangesPerTransaction = 1
let batchwiseApplySeconds = try await asyncSeconds { _ = try await batchwiseEngine.sync() }
precondition(batchwiseReader.state == reader.state)
// The same number of rows changed in raw SQLite, in as many transactions as the store wrote.
let rawApply = try seconds {
    let perBatch = applied.pulledChanges / max(1, applied.pullTransactions)
    for start in stride(from: 0, to: contactCount, by: perBatch) {
        try raw.write { db in
            let statement = try db.makeStatement(sql: "UPDATE contacts SET name = ? WHERE id = ?")
            for index in start..<min(start + perBatch, contactCount) {
                statement.runRaw(renamed[index], rawIDs[index])
            }
        }
    }
}
/// The floor of an apply in this schema: raw SQLite writing the rows the store writes for each
/// of `contactCount` pulled changes — the contact row with the entity's blob (`contactSQL`, bound
/// by `bindContact` for the change's index), the audit row (keyed by entity, schema 6) — and the sync state
/// once per transaction, `perBatch` changes per transaction, with no CRDT work. Seconds.
@MainActor func rawApplyFloor(
    perBatch: Int, device: String, contactSQL: String, bindContact: (Statement, Int) -> Void
) throws -> Double {
    try seconds {
        for start in stride(from: 0, to: contactCount, by: perBatch) {
            try schemaRaw.write { db in
                let contact = try db.cachedStatement(sql: contactSQL)
                let audit = try db.cachedStatement(
                    sql:
                        "INSERT INTO audit (entity_kind, entity_id, seq, at_hlc, user, device, action) "
                        + "VALUES ('contact', ?, ?, ?, '(server)', '\(device)', 'pull')")
                let end = min(start + perBatch, contactCount)
                // The rows' numbers reserved in one statement, as the store does.
                var seq =
                    try Int64.fetchOne(
                        db,
                        sql:
                            "UPDATE store_meta SET value = CAST(value AS INTEGER) + ? WHERE key = 'audit_seq' RETURNING value",
                        arguments: [end - start])! - Int64(end - start) + 1
                for index in start..<end {
                    bindContact(contact, index)
                    audit.runRaw(rawIDs[index], seq, rawPullStamps[index])
                    seq += 1
                }
                try db.execute(sql: "UPDATE store_meta SET value = ? WHERE key = 'hlc_last'", arguments: [device])
            }
        }
    }
}
// The floor of the renames: each moves the contact in the listing and owner indexes. The blob is
// of the size the store's blobs have after the renames, not the import's.
let renamedBlobSize = try DatabaseQueue(path: root + "/reader/replica.sqlite").read { db in
    try Int.fetchOne(db, sql: "SELECT AVG(LENGTH(state)) FROM contacts") ?? 0
}
let renamedBlob = Data((0..<renamedBlobSize).map { UInt8(truncatingIfNeeded: $0 &* 41) })
let rawSchemaApply = try rawApplyFloor(
    perBatch: applied.pulledChanges / max(1, applied.pullTransactions), device: "0000000000000004",
    contactSQL: """
        INSERT INTO contacts
            (id, name, company, title, owner, status, address, lifecycle, updated_hlc, has_conflict, state)
        VALUES (?, ?, ?, ?, NULL, NULL, NULL, 'active', ?, 0, ?)
        ON CONFLICT (id) DO UPDATE SET
            name = excluded.name, company = excluded.company, title = excluded.title, owner = excluded.owner,
            status = excluded.status, address = excluded.address, lifecycle = excluded.lifecycle,
            updated_hlc = MAX(updated_hlc, excluded.updated_hlc), has_conflict = excluded.has_conflict,
            state = excluded.state
        """
) { contact, index in
    contact.runRaw(
        rawIDs[index], scatteredRenames[index], drafts[index].company, drafts[index].title, rawPullStamps[index],
        renamedBlob)
}
print(
    "applying \(applied.pulledChanges) remote field changes (\(applied.pullBatches) pulled batches in "
        + "\(applied.pullTransactions) transactions; the server's answers recorded beforehand): \(fmt(applySeconds)) s = "
        + "\(fmt(Double(applied.pulledChanges) / applySeconds, 0)) changes/s; pipelined, one transaction per batch "
        + "(batches not joined) \(fmt(batchwiseApplySeconds)) s = "
        + "\(fmt(Double(applied.pulledChanges) / batchwiseApplySeconds, 0)) changes/s; one batch at a time (not "
        + "prepared while the previous one is written) \(fmt(serialApplySeconds)) s = "
        + "\(fmt(Double(applied.pulledChanges) / serialApplySeconds, 0)) changes/s")
print(
    "  raw SQLite updating as many rows in as many transactions: \(fmt(Double(contactCount) / rawApply, 0)) rows/s; "
        + "ratio \(fmt(applySeconds / rawApply))×")
print(
    "  raw SQLite writing the store's rows for each change into the store's schema (\(renamedBlobSize)-byte "
        + "blobs): "
        + "\(fmt(Double(contactCount) / rawSchemaApply, 0)) changes/s; store ratio to it "
        + "\(fmt(applySeconds / rawSchemaApply))×; it is \(fmt(rawSchemaApply / rawApply))× "
        + "the one-row baseline")

// MARK: 4. Reading all contacts, bytes on disk

var rows = 0
let readSeconds = try seconds { rows = try reader.reader.contacts().count }
print("reading all \(rows) contacts (displayed values, sorted by name): \(fmt(readSeconds, 3)) s")
let rawRead = try seconds {
    // The same access pattern as the store: a cursor read by column index.
    _ = try raw.read { db in
        var names = [(String, String, String?)]()
        let rows = try Row.fetchCursor(db, sql: "SELECT id, name, company FROM contacts ORDER BY name")
        while let row = try rows.next() { names.append((row[0], row[1], row[2])) }
        return names.count
    }
}
print("  raw SQLite reading the same rows: \(fmt(rawRead, 3)) s")
// What a process pays when another one wrote to the same replica (`sync --watch` while edits
// are made in another window): its next write finds the file changed and reads it again.
let reloadSeconds = try seconds { try reader.reload() }
print("reloading the replica after another process wrote to it (\(contactCount) contacts): \(fmt(reloadSeconds, 3)) s")
try reader.checkpoint()
print(
    "bytes on disk per contact: store \(reader.sizeOnDisk() / contactCount) B (CRDT state + query tables + indexes); "
        + "raw SQLite row with the same values \(rawBytes / contactCount) B")

// MARK: 4b. Applying remote changes of a field no index holds

// The renames above also move every contact in the listing index (two more B-tree writes per
// change). The same number of title changes, applied the same way (pipelined, answers recorded
// beforehand) to the copy that applied the renames one batch at a time: how much of the apply's
// figure is the field it changes.
do {
    var titled = transport.ledger.state
    var titleClock = HybridLogicalClock(replica: ReplicaID(6))
    _ = try? titleClock.receive(titled.newestStamp!, wall: wall)
    let titleAuthor = Author(user: "titler", device: ReplicaID(6))
    var titleChanges = TenantState()
    for id in titled.contacts.sortedKeys {
        var edit = ContactEdit()
        edit.title = "Head of \(id.text.suffix(6))"
        let context = WriteContext(
            author: titleAuthor, stamp: titleClock.now(wall: wall + 2), settings: DomainSettings())
        titleChanges.merge(try titled.editContact(id, edit, context))
    }
    for chunk in titleChanges.chunked(entitiesPerChange: 500) { transport.ledger.apply(chunk) }
    let answers = RecordedPulls(
        transport.ledger, for: serialReader.session, wall: UInt64(Date().timeIntervalSince1970 * 1000))
    var report = SyncReport()
    profiling("titles", "enable")
    let titleSeconds = try await asyncSeconds {
        report = try await SyncEngine(store: serialReader, transport: answers).sync()
    }
    profiling("titles", "disable")
    print(
        "applying \(report.pulledChanges) remote changes of a field no index holds (the title; "
            + "\(report.pullBatches) batches in \(report.pullTransactions) transactions, pipelined): "
            + "\(fmt(titleSeconds)) s = "
            + "\(fmt(Double(report.pulledChanges) / titleSeconds, 0)) changes/s")
    // The floor for this schema and this change: raw SQLite writing the rows the store writes
    // for each pulled title (the entity's blob at its size after the change, the narrow update
    // of its contact row, the audit row and its index) and the sync state per transaction, in
    // as many transactions, with no CRDT work. Run on the schema floor's file of section 3.
    let titledBlobSize = try DatabaseQueue(path: root + "/reader-serial/replica.sqlite").read { db in
        try Int.fetchOne(db, sql: "SELECT AVG(LENGTH(state)) FROM contacts") ?? 0
    }
    let titledBlob = Data((0..<titledBlobSize).map { UInt8(truncatingIfNeeded: $0 &* 37) })
    let rawTitleSeconds = try rawApplyFloor(
        perBatch: report.pulledChanges / max(1, report.pullTransactions), device: "0000000000000006",
        contactSQL:
            "UPDATE contacts SET title = ?, address = NULL, updated_hlc = MAX(updated_hlc, ?), state = ? WHERE id = ?"
    ) { contact, index in contact.runRaw("Head of \(index)", rawPullStamps[index], titledBlob, rawIDs[index]) }
    print(
        "  raw SQLite writing the store's rows for each title change into the store's schema "
            + "(\(titledBlobSize)-byte blobs): \(fmt(Double(contactCount) / rawTitleSeconds, 0)) changes/s; "
            + "store ratio to it \(fmt(titleSeconds / rawTitleSeconds))×")
}

// MARK: 5. Durable server ingest (ServerDatabase), acknowledgement after commit

do {
    let server = try ServerDatabase.open(in: root + "/server")
    // 100,000 single-field edits of the reader's contacts, 200 per push batch, from one replica.
    var editorState = reader.state
    var clock = HybridLogicalClock(replica: ReplicaID(5))
    _ = try? clock.receive(editorState.newestStamp!, wall: wall)
    let author = Author(user: "editor", device: ReplicaID(5))
    let changes = try titleEdits(of: &editorState, by: author, clock: &clock, wall: wall + 2, firstSequence: 1)
    let batches = stride(from: 0, to: changes.count, by: 200).map {
        PushBatch(replica: ReplicaID(5), epoch: nil, changes: Array(changes[$0..<min($0 + 200, changes.count)]))
    }
    let now = UInt64(Date().timeIntervalSince1970 * 1000)
    var ackTimes = [Double]()
    let ingest = try seconds {
        for batch in batches {
            ackTimes.append(try seconds { _ = try server.receive(batch, tenant: "t", wall: now) })
        }
    }
    let rawIngest = try rawQueue("raw-ingest", .full)
    try rawIngest.write { db in try db.execute(sql: "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB NOT NULL)") }
    let blob = Data(repeating: 7, count: 60)
    let rawSeconds = try seconds {
        for start in stride(from: 0, to: changes.count, by: 200) {
            try rawIngest.write { db in
                let statement = try db.makeStatement(sql: "INSERT INTO t (v) VALUES (?)")
                for _ in start..<min(start + 200, changes.count) { statement.runRaw(blob) }
            }
        }
    }
    print(
        "durable server ingest, 200 single-field changes per push, ack after commit: "
            + "\(fmt(Double(changes.count) / ingest, 0)) changes/s; ack p50 \(fmt(median(ackTimes) * 1000, 1)) ms, "
            + "p99 \(fmt(percentile(ackTimes, 0.99) * 1000, 1)) ms per 200-change batch; "
            + "raw SQLite inserting 60-byte rows in the same transactions: \(fmt(Double(changes.count) / rawSeconds, 0)) rows/s"
    )
}
