// CRDT benchmarks for issue #2: merge throughput of single-field deltas into a 100,000-record
// map, encoded sizes, and memory per record, each beside a plain-Swift baseline measured in the
// same run. Release builds only:
//   swift run -c release --package-path Benchmarks crdt-bench
import CHeapStats
import CRDT

#if canImport(Glibc)
import Glibc
#endif

// MARK: - A contact-like record: 7 registers and 3 sets (10 fields)

struct ContactLike: Mergeable, Sendable {
    var registers: [MVRegister<String>] = Array(repeating: MVRegister(), count: 7)
    var phones = ORSet<String>()
    var emails = ORSet<String>()
    var tags = ORSet<String>()

    init() {}

    static let registerNames = ["name", "company", "title", "status", "owner", "address", "note"]

    var isBottom: Bool {
        registers.allSatisfy(\.isBottom) && phones.isBottom && emails.isBottom && tags.isBottom
    }

    mutating func merge(_ other: ContactLike) {
        for index in 0..<7 where !other.registers[index].isBottom { registers[index].merge(other.registers[index]) }
        if !other.phones.isBottom { phones.merge(other.phones) }
        if !other.emails.isBottom { emails.merge(other.emails) }
        if !other.tags.isBottom { tags.merge(other.tags) }
    }
}

extension ContactLike: BinaryBlob {
    static var blobType: BlobType { BlobType(rawValue: 0x70) }

    func encode(to writer: inout BinaryWriter) {
        var present: UInt64 = 0
        for index in 0..<7 where !registers[index].isBottom { present |= 1 << UInt64(index) }
        if !phones.entries.isEmpty { present |= 1 << 7 }
        if !emails.entries.isEmpty { present |= 1 << 8 }
        if !tags.entries.isEmpty { present |= 1 << 9 }
        writer.writeVarint(present)
        for index in 0..<7 where present & (1 << UInt64(index)) != 0 { registers[index].encode(to: &writer) }
        if present & (1 << 7) != 0 { phones.encode(to: &writer) }
        if present & (1 << 8) != 0 { emails.encode(to: &writer) }
        if present & (1 << 9) != 0 { tags.encode(to: &writer) }
    }

    init(from reader: inout BinaryReader) throws(BinaryDecodingError) {
        let present = try reader.readVarint("a field bitmap")
        guard present < 1 << 10 else {
            throw reader.error(.invalidValue, "expected 10 fields, found bitmap \(present)")
        }
        self.init()
        for index in 0..<7 where present & (1 << UInt64(index)) != 0 {
            registers[index] = try MVRegister(from: &reader)
        }
        if present & (1 << 7) != 0 { phones = try ORSet(from: &reader) }
        if present & (1 << 8) != 0 { emails = try ORSet(from: &reader) }
        if present & (1 << 9) != 0 { tags = try ORSet(from: &reader) }
    }
}

/// The same data as plain Swift values: the baseline.
struct PlainContact {
    var registers: [String]
    var phones: [String]
    var emails: [String]
    var tags: [String]
}

// MARK: - Data

let firstNames = ["Jana", "Petr", "Eva", "Tomáš", "Lucie", "Martin", "Zoë", "Ondřej"]
let lastNames = ["Nováková", "Svoboda", "Dvořák", "Černá", "Procházka", "Kučera", "Smith", "Veselá"]
let companies = ["Acme s.r.o.", "Kraliki a.s.", "Vltava Foods", "Brno Tech", "Ostrava Steel"]

func values(for index: Int) -> (registers: [String], phones: [String], emails: [String], tags: [String]) {
    let first = firstNames[index % firstNames.count]
    let last = lastNames[(index / 8) % lastNames.count]
    return (
        [
            "\(first) \(last)", companies[index % companies.count], "Sales lead", "active", "agent\(index % 40)",
            "Hlavní \(index % 200), Praha", "VIP since 2024",
        ],
        ["+420601\(String(100_000 + index % 900_000))", "+420777\(String(100_000 + (index * 7) % 900_000))"],
        ["c\(index)@example.cz", "\(first.lowercased())\(index)@firma.cz"],
        ["vip", "b2b"]
    )
}

let creator = ReplicaID(0x1F2E_3D4C_5B6A_7988)
let editor = ReplicaID(0x0A1B_2C3D_4E5F_6071)
let baseWall: UInt64 = 1_764_000_000_000

func makeRecord(_ index: Int, stamp: HLC) -> ContactLike {
    let data = values(for: index)
    var record = ContactLike()
    for field in 0..<7 { record.registers[field].write(data.registers[field], at: stamp) }
    for phone in data.phones { record.phones.insert(phone, at: stamp) }
    for email in data.emails { record.emails.insert(email, at: stamp) }
    for tag in data.tags { record.tags.insert(tag, at: stamp) }
    return record
}

func heapInUse() -> Int {
    Int(heap_stats_in_use())
}

func measure(_ body: () -> Void) -> Double {
    let start = ContinuousClock.now
    body()
    let elapsed = ContinuousClock.now - start
    return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
}

func format(_ value: Double, _ digits: Int = 0) -> String {
    let scale = pow(10.0, Double(digits))
    let rounded = (value * scale).rounded() / scale
    return digits == 0 ? String(Int(rounded)) : String(rounded)
}

nonisolated(unsafe) var rng = SystemRandomNumberGenerator()  // single-threaded benchmark
let recordCount = 100_000
let deltaCount = 1_000_000

print("# crdt-bench — \(recordCount) records, \(deltaCount) deltas")

// MARK: Memory per record

var clock = HybridLogicalClock(replica: creator)
let heapBefore = heapInUse()
var map = ORMap<UInt64, ContactLike>()
for index in 0..<recordCount {
    let stamp = clock.now(wall: baseWall + UInt64(index))
    map.update(UInt64(index)) { record in
        record = makeRecord(index, stamp: stamp)
        return record
    }
}
let crdtBytes = heapInUse() - heapBefore

let plainBefore = heapInUse()
var plain = [UInt64: PlainContact](minimumCapacity: 0)
for index in 0..<recordCount {
    let data = values(for: index)
    plain[UInt64(index)] = PlainContact(
        registers: data.registers, phones: data.phones, emails: data.emails, tags: data.tags)
}
let plainBytes = heapInUse() - plainBefore
print(
    "memory: CRDT map \(crdtBytes / recordCount) B/record; plain Swift dictionary of structs \(plainBytes / recordCount) B/record; "
        + "ratio \(format(Double(crdtBytes) / Double(plainBytes), 2))×")

// MARK: Encoded sizes

let sampleRecord = map[12_345]!
let recordBlob = sampleRecord.encodedBlob()
let plainRecordBytes =
    values(for: 12_345).registers.reduce(0) { $0 + $1.utf8.count }
    + (values(for: 12_345).phones + values(for: 12_345).emails + values(for: 12_345).tags).reduce(0) {
        $0 + $1.utf8.count
    }
print(
    "size: 10-field record (7 registers, three 2-element sets) \(recordBlob.count) B; its text alone is \(plainRecordBytes) B"
)

var single = map
let shortDelta = single.update(12_345) { record in
    var delta = ContactLike()
    delta.registers[0] = record.registers[0].write("Alice", at: clock.now(wall: baseWall + 200_000))
    return delta
}
let typicalDelta = single.update(12_346) { record in
    var delta = ContactLike()
    delta.registers[0] = record.registers[0].write("Jana Nováková", at: clock.now(wall: baseWall + 200_001))
    return delta
}
var otherClock = HybridLogicalClock(replica: editor)
_ = try! otherClock.receive(clock.last, wall: baseWall + 200_002)
let crossDelta = single.update(12_347) { record in
    var delta = ContactLike()
    delta.registers[0] = record.registers[0].write("Alice", at: otherClock.now(wall: baseWall + 200_002))
    return delta
}
print(
    "size: single-field delta in a map (\"Alice\") \(shortDelta.encodedBlob().count) B; "
        + "(\"Jana Nováková\", 15 B of UTF-8) \(typicalDelta.encodedBlob().count) B; "
        + "overwriting another replica's value (\"Alice\") \(crossDelta.encodedBlob().count) B")

// Encoding speed: every record as a blob of its own, as a store writes each entity it changes.
// The fastest of five passes (the machine is shared); the bytes are summed so nothing is elided.
let records = (0..<recordCount).map { map[UInt64($0)]! }
var encodeSeconds = Double.infinity
var encodedTotal = 0
for _ in 0..<5 {
    var total = 0
    encodeSeconds = min(encodeSeconds, measure { for record in records { total &+= record.encodedBlob().count } })
    encodedTotal = total
}
print(
    "encoding each of the \(recordCount) records as its own blob (fastest of 5): \(format(encodeSeconds, 3)) s = "
        + "\(format(Double(recordCount) / encodeSeconds / 1e6, 2)) M records/s (\(encodedTotal / recordCount) B each)")

// MARK: Merge throughput

/// Single-field deltas as a replica receives them: from `writer`, whose state is `source`.
func makeDeltas(from source: ORMap<UInt64, ContactLike>, writer: ReplicaID, seen: HLC) -> [ORMap<UInt64, ContactLike>] {
    var source = source
    var writerClock = HybridLogicalClock(replica: writer, maxForwardDrift: .max / 2)
    _ = try! writerClock.receive(seen, wall: baseWall + 300_000)
    var deltas = [ORMap<UInt64, ContactLike>]()
    deltas.reserveCapacity(deltaCount)
    for index in 0..<deltaCount {
        let key = UInt64.random(in: 0..<UInt64(recordCount), using: &rng)
        let field = Int.random(in: 0..<10, using: &rng)
        let stamp = writerClock.now(wall: baseWall + 300_000 + UInt64(index / 100))
        deltas.append(
            source.update(key) { record in
                var delta = ContactLike()
                switch field {
                case 0..<7: delta.registers[field] = record.registers[field].write("value \(index % 1000)", at: stamp)
                case 7: delta.phones = record.phones.insert("+420602\(100_000 + index % 900_000)", at: stamp)
                case 8: delta.emails = record.emails.insert("n\(index)@example.cz", at: stamp)
                default: delta.tags = record.tags.insert(["vip", "b2b", "lead", "cz"][index % 4], at: stamp)
                }
                return delta
            })
    }
    return deltas
}

func mergeThroughput(
    _ label: String, into target: ORMap<UInt64, ContactLike>, _ deltas: [ORMap<UInt64, ContactLike>]
) -> Double {
    var target = target
    let seconds = measure {
        for delta in deltas { target.merge(delta) }
    }
    precondition(target.count == recordCount)
    let rate = Double(deltas.count) / seconds
    print("merge: \(label): \(format(rate)) merges/s (\(format(seconds * 1000, 1)) ms for \(deltas.count))")
    return rate
}

// 1. The record's own replica keeps editing: each delta supersedes a value from the same replica.
let ownDeltas = makeDeltas(from: map, writer: creator, seen: clock.last)
let ownRate = mergeThroughput("deltas from the replica that wrote the current values", into: map, ownDeltas)
// 2. Another replica, having synced, edits: each delta supersedes the first replica's value.
let otherDeltas = makeDeltas(from: map, writer: editor, seen: clock.last)
let otherRate = mergeThroughput("deltas from another replica that had synced", into: map, otherDeltas)

// 3. The same, decoded from bytes first (what a replica receiving them over the wire does).
let wire = otherDeltas.map { $0.encodedBlob() }
let averageBytes = Double(wire.reduce(0) { $0 + $1.count }) / Double(wire.count)
var decodeTarget = map
let decodeSeconds = measure {
    for bytes in wire { decodeTarget.merge(try! ORMap<UInt64, ContactLike>(blob: bytes)) }
}
print(
    "merge: decode + merge from bytes (avg \(format(averageBytes, 1)) B/delta): \(format(Double(wire.count) / decodeSeconds)) merges/s"
)

// Baseline: the same number of plain field assignments into a dictionary of structs.
var plainTarget = plain
let assignments = (0..<deltaCount).map { index in
    (
        UInt64.random(in: 0..<UInt64(recordCount), using: &rng), Int.random(in: 0..<7, using: &rng),
        "value \(index % 1000)"
    )
}
let plainSeconds = measure {
    for (key, field, value) in assignments { plainTarget[key]!.registers[field] = value }
}
let plainRate = Double(deltaCount) / plainSeconds
print(
    "baseline: plain dictionary field assignment: \(format(plainRate)) assignments/s; "
        + "CRDT merge is \(format(plainRate / ownRate, 1))× / \(format(plainRate / otherRate, 1))× slower")
