// Server benchmarks for issue #5 against the REAL release `sync-server` process over loopback
// HTTP/2 + TLS (the load generator is this process; both share the machine's 2 cores):
//   swift build -c release --product sync-server
//   swift run -c release --package-path Benchmarks server-bench
// Sections: durable ingest (changes/s, ack latency) beside the store alone in the same run;
// initial sync of 100,000 contacts to a fresh replica; server memory per contact; live
// notification latency with 100 live replicas and 200 edits/s.
import AsyncHTTPClient
import CRDT
import Domain
import Foundation
import LocalStorage
import NIOCore
import NIOSSL
import Replica
import StoreSupport
import SyncServer

func seconds(since start: ContinuousClock.Instant) -> Double {
    let elapsed = ContinuousClock.now - start
    return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
}
func percentile(_ values: [Double], _ p: Double) -> Double {
    let sorted = values.sorted()
    return sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
}
/// Seconds since it was made; Sendable so concurrent tasks can read the same origin.
struct Stopwatch: Sendable {
    let origin = ContinuousClock.now
    @Sendable func elapsed() -> Double {
        let elapsed = ContinuousClock.now - origin
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    }
}
func ms(_ value: Double) -> String { String(format: "%.2f ms", value * 1000) }
func fmt(_ value: Double, _ digits: Int = 0) -> String { String(format: "%.\(digits)f", value) }

let environment = ProcessInfo.processInfo.environment
let contactCount = Int(environment["BENCH_CONTACTS"] ?? "") ?? 100_000
let pushers = Int(environment["BENCH_PUSHERS"] ?? "") ?? 8
let batchSize = 200
let binary =
    environment["SYNC_SERVER_BIN"]
    ?? URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent(".build/release/sync-server").path
guard FileManager.default.isExecutableFile(atPath: binary) else {
    print("build the server first: swift build -c release --product sync-server  (looked for \(binary))")
    exit(2)
}
let root = NSTemporaryDirectory() + "kraliki-server-bench-\(UUID().uuidString)"
let data = root + "/data"
try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
defer { try? FileManager.default.removeItem(atPath: root) }

// MARK: The server process

let server = Process()
server.executableURL = URL(fileURLWithPath: binary)
server.arguments = ["--data", data, "--port", "0"]
server.environment = environment.merging(["KRALIKI_LOG_LEVEL": "warning"]) { $1 }
let serverOutput = Pipe()
server.standardOutput = serverOutput
server.standardError = FileHandle.nullDevice
try server.run()
var banner = ""
while !banner.contains("fingerprint") {
    let chunk = serverOutput.fileHandleForReading.availableData
    if chunk.isEmpty { break }
    banner += String(decoding: chunk, as: UTF8.self)
}
guard let url = banner.split(separator: " ").first(where: { $0.hasPrefix("https://") }).map(String.init) else {
    print("the server did not start: \(banner)")
    exit(1)
}
func serverRSS() -> Int {
    let status = (try? String(contentsOfFile: "/proc/\(server.processIdentifier)/status", encoding: .utf8)) ?? ""
    let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
    return (Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0) * 1024
}
let pem = try String(contentsOfFile: data + "/tls/server-cert.pem", encoding: .utf8)
let cpu =
    (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))?.split(separator: "\n")
    .first { $0.hasPrefix("model name") }?.split(separator: ":").last?.trimmingCharacters(in: .whitespaces) ?? "?"
print("# server-bench — \(url), \(ProcessInfo.processInfo.activeProcessorCount) cores (\(cpu)), release build")
let rssEmpty = serverRSS()

// Devices: enrolled through the store file the server serves (as `sync-server enroll` does).
let control = try ServerDatabase.open(in: data)
func enrolDevice(_ user: String) throws -> Enrolment {
    let code = try control.createEnrolmentCode(
        tenant: "acme", user: user, role: .field, wall: ServerRuntime.systemWall(), actor: "bench")
    return try control.enrol(code: code.code, wall: ServerRuntime.systemWall())
}

// MARK: 1. Durable ingest over HTTP/2

/// `count` contact creations by `device`, in push batches of `batchSize`.
func batches(for device: Enrolment, count: Int, offset: Int) -> [[UInt8]] {
    let replica = ReplicaID(hex: device.deviceId)!
    var clock = HybridLogicalClock(replica: replica)
    var state = TenantState()
    var changes = [PushChange]()
    let wall = ServerRuntime.systemWall()
    for index in 0..<count {
        let context = WriteContext(author: Author(user: device.user, device: replica), stamp: clock.now(wall: wall))
        let delta = try! state.createContact(
            ContactDraft(
                name: "Contact \(offset + index) Nováková", company: "Acme \(index % 500) s.r.o.",
                phones: ["+4206\(String(10_000_000 + offset + index))"], emails: ["c\(offset + index)@example.cz"]),
            context)
        changes.append(PushChange(localSequence: UInt64(index + 1), change: delta))
    }
    return stride(from: 0, to: changes.count, by: batchSize).map {
        PushBatch(replica: replica, epoch: nil, changes: Array(changes[$0..<min($0 + batchSize, changes.count)]))
            .encodedBlob()
    }
}

let devices = try (0..<pushers).map { try enrolDevice("pusher\($0)") }
let perPusher = contactCount / pushers
let work = devices.enumerated().map { batches(for: $1, count: perPusher, offset: $0 * perPusher) }
let clients = try devices.map { try HTTPSyncClient(server: url, token: $0.token, trustPEM: pem) }

let ingestStart = ContinuousClock.now
let latencies = try await withThrowingTaskGroup(of: [Double].self) { group in
    for (client, blobs) in zip(clients, work) {
        group.addTask {
            var latencies = [Double]()
            for blob in blobs {
                let start = ContinuousClock.now
                let ack = try PushAck(blob: try await client.push(blob))
                precondition(ack.rejected.isEmpty, "rejected: \(ack.rejected.first!)")
                latencies.append(seconds(since: start))
            }
            return latencies
        }
    }
    var all = [Double]()
    for try await latencies in group { all += latencies }
    return all
}
let ingestSeconds = seconds(since: ingestStart)
let ingested = perPusher * pushers
print(
    "ingest over HTTP/2+TLS: \(ingested) changes in \(fmt(ingestSeconds, 2)) s = \(fmt(Double(ingested) / ingestSeconds)) changes/s "
        + "(\(pushers) concurrent pushers, \(batchSize)/batch); ack p50 \(ms(percentile(latencies, 0.5))) "
        + "p99 \(ms(percentile(latencies, 0.99)))")

// The same batches straight into a ServerDatabase (no HTTP, no group commit) in this process,
// one batch per transaction — the baseline the HTTP path is compared with.
do {
    let baseline = try ServerDatabase.open(in: root + "/baseline")
    let decoded = try work.prefix(2).flatMap { try $0.map { try PushBatch(blob: $0) } }
    let start = ContinuousClock.now
    var count = 0
    for batch in decoded {
        _ = try baseline.receive(batch, tenant: "acme", wall: ServerRuntime.systemWall())
        count += batch.changes.count
    }
    let elapsed = seconds(since: start)
    print(
        "baseline, ServerDatabase.receive in-process (one batch per transaction): \(fmt(Double(count) / elapsed)) changes/s; "
            + "HTTP/2 ingest = \(fmt((Double(ingested) / ingestSeconds) / (Double(count) / elapsed), 2))× of it")
}
// Acknowledgement latency of one pusher alone (no queueing behind other pushers' groups).
do {
    let device = try enrolDevice("solo")
    let client = try HTTPSyncClient(server: url, token: device.token, trustPEM: pem)
    var latencies = [Double]()
    for blob in batches(for: device, count: 50 * batchSize, offset: 20_000_000) {
        let start = ContinuousClock.now
        _ = try await client.push(blob)
        latencies.append(seconds(since: start))
    }
    print(
        "one pusher alone, \(batchSize)-change batches: ack p50 \(ms(percentile(latencies, 0.5))) "
            + "p99 \(ms(percentile(latencies, 0.99))) (\(fmt(Double(batchSize) / percentile(latencies, 0.5))) changes/s)"
    )
    try await client.shutdown()
}
let rssLoaded = serverRSS()

// MARK: 2. Initial sync of everything to a fresh replica

/// A replica enrolled in its own directory, with nothing in it yet.
func freshReplica(_ label: String) async throws -> (LocalStore, HTTPSyncClient, directory: String) {
    let code = try control.createEnrolmentCode(
        tenant: "acme", user: "fresh", role: .field, wall: ServerRuntime.systemWall(), actor: "bench")
    let fingerprint = ServerCertificate.fingerprint(
        der: try NIOSSLCertificate.fromPEMBytes(Array(pem.utf8))[0].toDERBytes())
    let directory = root + "/fresh-\(label)"
    _ = try await ReplicaEnrolment.enrol(
        EnrolmentLink(server: url, code: code.code, fingerprint: fingerprint), directory: directory)
    return (try LocalStore.open(in: directory), try HTTPSyncClient.enrolled(in: directory), directory)
}

/// One initial sync to a new replica: the engine's defaults, or a variant for comparison in the
/// same run.
func initialSync(_ label: String, pipelined: Bool, image: Bool) async throws {
    let (store, client, _) = try await freshReplica(label)
    var engine = SyncEngine(store: store, transport: client)
    engine.wall = SyncEngine.systemWall
    engine.pipelinesPulls = pipelined
    engine.takesImages = image
    let start = ContinuousClock.now
    let report = try await engine.sync()
    let rows = try store.reader.contacts().count
    let elapsed = seconds(since: start)
    let taken =
        report.imageEntities.map { ", \($0) entities from the image + \(report.pulledChanges) changes pulled" } ?? ""
    print(
        "initial sync to a fresh replica (\(label)): \(rows) contacts queryable in \(fmt(elapsed, 2)) s "
            + "(\(fmt(Double(rows) / elapsed)) rows/s, \(report.pullBatches) pulls\(taken))")
    if image, report.imageEntities == nil {
        print("  (no image was taken: \(report.imageRefusal ?? "the server had none"))")
    }
    try await client.shutdown()
}
try await initialSync("one pull at a time, as before", pipelined: false, image: false)
try await initialSync("next pull fetched during apply", pipelined: true, image: false)

// The bootstrap image: the server writes it in the background (every `imageIntervalSeconds`,
// 60 by default, for a tenant with `imageMinChanges` new changes); wait for one holding
// everything ingested, then time a fresh replica taking it (the engine's default).
do {
    let head = try control.ledgerHead(of: "acme")!.sequence
    let waitStart = ContinuousClock.now
    var image: (path: String, bytes: Int)?
    while image == nil {
        let folders = (try? FileManager.default.contentsOfDirectory(atPath: data + "/images")) ?? []
        for folder in folders {
            for name in (try? FileManager.default.contentsOfDirectory(atPath: data + "/images/" + folder)) ?? []
            where name.hasPrefix("image-") && name.hasSuffix(".sqlite") {
                let cursor = UInt64(name.dropLast(".sqlite".count).split(separator: "-").last ?? "") ?? 0
                let path = data + "/images/" + folder + "/" + name
                if cursor >= head {
                    image = (path, (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0)
                }
            }
        }
        if image == nil {
            if seconds(since: waitStart) > 180 { print("no bootstrap image after 180 s"); exit(1) }
            try await Task.sleep(for: .milliseconds(100))
        }
    }
    print(
        "bootstrap image of \(head) changes: \(image!.bytes / 1024) KiB (\(image!.bytes / ingested) B per contact), "
            + "ready \(fmt(seconds(since: waitStart), 1)) s after the ingest sections ended")
    try await Task.sleep(for: .milliseconds(500))  // the file is renamed into place just before it is offered
    print(
        "  server RSS after writing it: \(serverRSS() / 1024) KiB "
            + "(\(fmt(Double(serverRSS() - rssEmpty) / Double(ingested), 1)) B per contact)")
}
try await initialSync("bootstrap image, then pulls: the default", pipelined: true, image: true)
// Where the image path's time goes: the same steps one by one on another fresh replica.
do {
    let (store, client, directory) = try await freshReplica("steps")
    var start = ContinuousClock.now
    _ = try await client.downloadImage(to: store.imageDownloadPath)
    let download = seconds(since: start)
    start = ContinuousClock.now
    let adoption = try store.adoptImage(at: store.imageDownloadPath, checked: true)
    let adopt = seconds(since: start)
    start = ContinuousClock.now
    let rows = try store.reader.contacts().count
    let query = seconds(since: start)
    start = ContinuousClock.now
    _ = try LocalStore.open(in: directory)
    let reopen = seconds(since: start)
    print(
        "  its steps: download \(fmt(download, 2)) s, check + take \(fmt(adopt, 2)) s (\(adoption.entities) entities), "
            + "list \(rows) contacts \(fmt(query, 2)) s; for scale, opening that store again (quick_check + loading "
            + "the state into memory) \(fmt(reopen, 2)) s")
    try await client.shutdown()
}
// What writing an image costs the server (in this process, on the same store): from nothing,
// and a refresh with nothing new (it still opens the builder: quick_check and its state).
do {
    let images = BootstrapImages(directory: root + "/images-in-process", store: control)
    var start = ContinuousClock.now
    let image = try images.refresh(tenant: "acme", wall: ServerRuntime.systemWall())
    let scratch = seconds(since: start)
    start = ContinuousClock.now
    _ = try images.refresh(tenant: "acme", wall: ServerRuntime.systemWall())
    print(
        "writing the image in process: from nothing \(fmt(scratch, 2)) s (\(image.cursor) changes pulled by the "
            + "builder, VACUUM INTO, quick_check, SHA-256); a refresh with nothing new \(fmt(seconds(since: start), 2)) s"
    )
}
print(
    "server RSS: \(rssEmpty / 1024) KiB empty, \(rssLoaded / 1024) KiB after storing \(ingested) contacts "
        + "(\(fmt(Double(rssLoaded - rssEmpty) / Double(ingested), 1)) B per contact); "
        + "server.sqlite \( ((try? FileManager.default.attributesOfItem(atPath: data + "/server.sqlite")[.size] as? Int) ?? 0) / ingested) B per contact"
)

// MARK: 3. Live: 100 followers, 200 edits/s

do {
    let followers = Int(environment["BENCH_FOLLOWERS"] ?? "") ?? 100
    let editsPerSecond = 200.0
    let editCount = Int(environment["BENCH_EDITS"] ?? "") ?? 2_000
    let listenerDevices = try (0..<followers).map { try enrolDevice("follower\($0)") }
    let listeners = try listenerDevices.map { try HTTPSyncClient(server: url, token: $0.token, trustPEM: pem) }
    let editor = try enrolDevice("editor")
    let editorClient = try HTTPSyncClient(server: url, token: editor.token, trustPEM: pem)
    let edits = batches(for: editor, count: editCount, offset: 10_000_000).flatMap { blob -> [[UInt8]] in
        let batch = try! PushBatch(blob: blob)
        return batch.changes.map { PushBatch(replica: batch.replica, epoch: nil, changes: [$0]).encodedBlob() }
    }
    let base = try control.sequence(of: "acme")
    let stopwatch = Stopwatch()
    let now = stopwatch.elapsed
    // Each follower records when it first saw each sequence number (or a later one).
    let seen = try await withThrowingTaskGroup(of: [(UInt64, Double)].self) { group in
        for listener in listeners {
            group.addTask {
                var events = [(UInt64, Double)]()
                let stream = try await listener.liveSequences()
                for try await sequence in stream {
                    events.append((sequence, now()))
                    if sequence >= base + UInt64(edits.count) { break }
                }
                return events
            }
        }
        try await Task.sleep(for: .seconds(1))  // let every stream connect
        var sent = [Double]()
        let interval = 1.0 / editsPerSecond
        let start = now()
        // Edits go out on schedule without waiting for the previous acknowledgement (one push
        // takes longer than 5 ms: an fsync and a round trip), so they overlap and are group-
        // committed. Edit i is matched with the i-th sequence number: commit order can swap two
        // edits sent within the same few ms, an error of that size on their latencies.
        var pushes = [Task<Void, any Error>]()
        for (index, edit) in edits.enumerated() {
            let due = start + Double(index) * interval
            if due > now() { try await Task.sleep(for: .microseconds(Int((due - now()) * 1_000_000))) }
            sent.append(now())
            pushes.append(Task { _ = try await editorClient.push(edit) })
        }
        for push in pushes { try await push.value }
        var all = [[(UInt64, Double)]]()
        for try await events in group { all.append(events) }
        return (sent, all)
    }
    let (sent, all) = seen
    var latencies = [Double]()
    for events in all {
        var index = 0
        for (edit, sentAt) in sent.enumerated() {
            let sequence = base + UInt64(edit + 1)
            while index < events.count && events[index].0 < sequence { index += 1 }
            if index < events.count { latencies.append(events[index].1 - sentAt) }
        }
    }
    let rate = Double(sent.count) / (sent.last! - sent.first!)
    print(
        "live: \(followers) followers, \(sent.count) single-edit pushes at \(fmt(rate)) /s; edit-to-follower notification "
            + "p50 \(ms(percentile(latencies, 0.5))) p99 \(ms(percentile(latencies, 0.99))) max \(ms(latencies.max()!)) "
            + "(\(latencies.count) deliveries)")
    for listener in listeners { try await listener.shutdown() }
    try await editorClient.shutdown()
}
for client in clients { try await client.shutdown() }
kill(server.processIdentifier, SIGTERM)
server.waitUntilExit()
