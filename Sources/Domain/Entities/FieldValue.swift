import CRDT

/// A value shown to people in conflicts and listings.
public protocol DisplayValue {
    var display: String { get }
}

extension String: DisplayValue { public var display: String { self } }
extension Int64: DisplayValue { public var display: String { Interval.iso(self) } }
extension UInt32: DisplayValue { public var display: String { "\(self) s" } }
extension HLC: DisplayValue { public var display: String { text } }
extension EntityID: DisplayValue { public var display: String { text } }
extension Interval: DisplayValue { public var display: String { description } }
extension ContactStatus: DisplayValue { public var display: String { rawValue } }
extension CallDirection: DisplayValue { public var display: String { rawValue } }
extension CallOutcome: DisplayValue { public var display: String { rawValue } }
extension ScheduleKind: DisplayValue { public var display: String { rawValue } }
extension ScheduleStatus: DisplayValue { public var display: String { rawValue } }
extension Reference: DisplayValue { public var display: String { id?.text ?? "(none)" } }
extension OverlapAcceptance: DisplayValue {
    public var display: String { "overlap of \(first) and \(second) accepted" }
}
extension Lifecycle: DisplayValue {
    public var display: String {
        switch self {
        case .active: "active"
        case .deleted: "deleted"
        case .merged(let into, _): "merged into \(into)"
        }
    }
}

/// One live event of a field, as conflicts show it.
public struct FieldEvent: Hashable, Sendable, Codable {
    /// The field, with a key for map fields (`field.customer-no`).
    public let field: String
    public let stamp: HLC
    public let value: String
}

/// A field of an entity: a CRDT whose live events and knowledge the domain can inspect.
public protocol FieldCRDT: Mergeable, BinaryCodable, Codable, Sendable {
    /// Every live event, for "delete vs edit".
    func liveEvents(field: String) -> [FieldEvent]
    /// Registers with their siblings, for "concurrent values" (empty for sets).
    func registers(field: String) -> [(field: String, siblings: [FieldEvent])]
    /// Everything seen on this field.
    var knowledge: VersionVector { get }
    /// `knowledge.newestDot`, which registers and sets find without building their knowledge.
    var newestDot: Dot? { get }
    /// Writes the value of sibling `index` of the register `field` again, superseding all its
    /// siblings, and returns the delta; `nil` when there is no such register or sibling.
    mutating func rewriteSibling(field: String, prefix: String, index: Int, at stamp: HLC) -> Self?
    /// The stamps of ``liveEvents(field:)`` without building their texts: what the server's
    /// ownership check compares on every edit of a colleague's record.
    var liveStamps: [HLC] { get }
    /// `knowledge` holds a replica other than `replica`, found without building it: the server
    /// asks this of every pushed change.
    func hasSeen(anyReplicaBut replica: ReplicaID) -> Bool
    /// `knowledge.covers(dot)`, found without building the knowledge: asked of every field a
    /// pull brings, for whom the audit trail names (``Entity/writers(of:unseenBy:)``).
    func covers(_ dot: Dot) -> Bool
    /// Calls `body` with each of ``liveStamps``, without building the array.
    func forEachLiveStamp(_ body: (HLC) -> Void)
    /// Adds the replicas this field names and its kernels' sizes (see ``ReplicaCensus``).
    func takeCensus(_ census: inout ReplicaCensus)
}

/// The newer of two dots by `VersionVector.newestDot`'s rule.
@inlinable
func newer(_ a: Dot?, _ b: Dot?) -> Dot? {
    guard let a, let b else { return a ?? b }
    return b.counter > a.counter || (b.counter == a.counter && b.replica < a.replica) ? b : a
}

extension FieldCRDT {
    public var newestDot: Dot? { knowledge.newestDot }
    public var liveStamps: [HLC] { liveEvents(field: "").map(\.stamp) }
    public func hasSeen(anyReplicaBut replica: ReplicaID) -> Bool {
        knowledge.entries.contains { $0.replica != replica }
    }
    public func covers(_ dot: Dot) -> Bool { knowledge.covers(dot) }
    public func forEachLiveStamp(_ body: (HLC) -> Void) { for stamp in liveStamps { body(stamp) } }

    public mutating func rewriteSibling(field: String, prefix: String, index: Int, at stamp: HLC) -> Self? { nil }
}

extension MVRegister: FieldCRDT where Value: DisplayValue & BinaryCodable & Codable {
    public func liveEvents(field: String) -> [FieldEvent] {
        siblings.map { FieldEvent(field: field, stamp: $0.stamp, value: $0.payload.display) }
    }

    public func registers(field: String) -> [(field: String, siblings: [FieldEvent])] {
        [(field, liveEvents(field: field))]
    }

    public var knowledge: VersionVector { kernel.context }
    public var newestDot: Dot? { kernel.newestDot }
    @inlinable public var liveStamps: [HLC] { kernel.live.map { $0.stamp } }
    @inlinable public func hasSeen(anyReplicaBut replica: ReplicaID) -> Bool {
        kernel.hasSeen(anyReplicaBut: replica)
    }
    @inlinable public func covers(_ dot: Dot) -> Bool { kernel.covers(dot) }
    @inlinable public func forEachLiveStamp(_ body: (HLC) -> Void) { kernel.forEachLiveStamp(body) }
    @inlinable public func takeCensus(_ census: inout ReplicaCensus) { census.note(kernel) }

    public mutating func rewriteSibling(field: String, prefix: String, index: Int, at stamp: HLC) -> MVRegister? {
        guard field == prefix, siblings.indices.contains(index) else { return nil }
        return write(siblings[index].payload, at: stamp)
    }
}

extension ORSet: FieldCRDT where Element: DisplayValue & BinaryCodable & Codable {
    public func liveEvents(field: String) -> [FieldEvent] {
        entries.flatMap { entry in
            entry.kernel.live.map { FieldEvent(field: field, stamp: $0.stamp, value: "+ " + entry.element.display) }
        }
    }

    public func registers(field: String) -> [(field: String, siblings: [FieldEvent])] { [] }

    public var knowledge: VersionVector {
        entries.reduce(into: VersionVector()) { $0.merge($1.kernel.context) }
    }

    public var newestDot: Dot? { entries.reduce(nil) { newer($0, $1.kernel.newestDot) } }
    @inlinable public var liveStamps: [HLC] { entries.flatMap { $0.kernel.live.map { $0.stamp } } }
    @inlinable public func hasSeen(anyReplicaBut replica: ReplicaID) -> Bool {
        entries.contains { $0.kernel.hasSeen(anyReplicaBut: replica) }
    }
    /// The knowledge is the join of the entries' contexts (the greatest counter per replica):
    /// it covers a dot when one of them does.
    @inlinable public func covers(_ dot: Dot) -> Bool {
        dot.counter == 0 || entries.contains { $0.kernel.covers(dot) }
    }
    @inlinable public func forEachLiveStamp(_ body: (HLC) -> Void) {
        for entry in entries { entry.kernel.forEachLiveStamp(body) }
    }
    @inlinable public func takeCensus(_ census: inout ReplicaCensus) {
        for entry in entries { census.note(entry.kernel) }
    }
}

extension ORMap: FieldCRDT where Key == String, Value == MVRegister<String> {
    public func liveEvents(field: String) -> [FieldEvent] {
        sortedKeys.flatMap { key in valueByKey[key]!.liveEvents(field: "\(field).\(key)") }
    }

    public func registers(field: String) -> [(field: String, siblings: [FieldEvent])] {
        sortedKeys.map { key in ("\(field).\(key)", valueByKey[key]!.liveEvents(field: "\(field).\(key)")) }
    }

    @inlinable public var liveStamps: [HLC] { valueByKey.values.flatMap { $0.liveStamps } }
    @inlinable public func hasSeen(anyReplicaBut replica: ReplicaID) -> Bool {
        valueByKey.values.contains { $0.kernel.hasSeen(anyReplicaBut: replica) }
    }
    /// The knowledge is the join of the registers' (see `ORSet.covers`).
    @inlinable public func covers(_ dot: Dot) -> Bool {
        dot.counter == 0 || valueByKey.values.contains { $0.kernel.covers(dot) }
    }
    @inlinable public func forEachLiveStamp(_ body: (HLC) -> Void) {
        for register in valueByKey.values { register.kernel.forEachLiveStamp(body) }
    }
    @inlinable public func takeCensus(_ census: inout ReplicaCensus) {
        for register in valueByKey.values { census.note(register.kernel) }
    }

    public var knowledge: VersionVector {
        valueByKey.values.reduce(into: VersionVector()) { $0.merge($1.knowledge) }
    }

    public mutating func rewriteSibling(field: String, prefix: String, index: Int, at stamp: HLC) -> ORMap? {
        guard field.hasPrefix(prefix + "."), let register = valueByKey[String(field.dropFirst(prefix.count + 1))],
            register.siblings.indices.contains(index)
        else { return nil }
        let key = String(field.dropFirst(prefix.count + 1))
        return update(key) { $0.write(register.siblings[index].payload, at: stamp) }
    }
}

/// Which device belongs to which user, recorded on every entity a device touches, so each
/// side of a conflict can name its user as well as its device.
///
/// An LWW register per device, merged device by device: the `ORMap<ReplicaID,
/// LWWRegister<String>>` it once was, and encoded exactly as that map (binary and
/// JSON). Kept as an array in device order: an entity records one or two devices (its creator,
/// a later editor), and an array merges, encodes and decodes without hashing and allocates
/// once where a dictionary allocated a table — every pulled change decodes and merges one.
public struct Authors: Mergeable, FieldCRDT {
    /// The user a device wrote as.
    public struct Record: Equatable, Sendable {
        public let device: ReplicaID
        public let user: LWWRegister<String>
    }

    /// One per device, in device order, none bottom.
    public private(set) var records: [Record] = []

    public init() {}

    /// The records as the map they once were (built on each call).
    public var userByDevice: ORMap<ReplicaID, LWWRegister<String>> {
        ORMap(Dictionary(uniqueKeysWithValues: records.map { ($0.device, $0.user) }))
    }

    public subscript(device: ReplicaID) -> String? { register(of: device)?.value }

    /// The register of `device`, if it recorded itself.
    public func register(of device: ReplicaID) -> LWWRegister<String>? {
        records.first { $0.device == device }?.user
    }

    /// Records `author` (once per device) and returns the delta.
    @discardableResult
    mutating func record(_ author: Author, at stamp: HLC) -> Authors {
        var delta = Authors()
        guard self[author.device] != author.user else { return delta }
        let index = records.firstIndex { $0.device >= author.device } ?? records.count
        let exists = index < records.count && records[index].device == author.device
        var register = exists ? records[index].user : LWWRegister()
        register.write(author.user, at: stamp)
        let record = Record(device: author.device, user: register)
        if exists { records[index] = record } else { records.insert(record, at: index) }
        delta.records = [record]
        return delta
    }

    public var isBottom: Bool { records.isEmpty }

    public mutating func merge(_ other: Authors) {
        if other.records.isEmpty { return }
        if records.isEmpty {
            records = other.records
            return
        }
        records = mergeSorted(records, other.records, precedes: { $0.device < $1.device }) {
            var user = $0.user
            user.merge($1.user)
            return Record(device: $0.device, user: user)
        }
    }

    public func liveEvents(field: String) -> [FieldEvent] { [] }
    public func registers(field: String) -> [(field: String, siblings: [FieldEvent])] { [] }
    /// The stamps of the records: they are writes like any other (the server's drift check and
    /// its field comparison see them).
    public var knowledge: VersionVector { VersionVector(records.compactMap { $0.user.stamp?.dot }) }
    /// `knowledge.newestDot` and `hasSeen` without building the knowledge: asked of every
    /// entity a pull brings (its audit and its row's `updated_hlc`).
    public var newestDot: Dot? { records.reduce(nil) { newer($0, $1.user.stamp?.dot) } }
    public func hasSeen(anyReplicaBut replica: ReplicaID) -> Bool {
        records.contains { $0.user.stamp.map { $0.replica != replica } ?? false }
    }
    public func covers(_ dot: Dot) -> Bool {
        dot.counter == 0
            || records.contains { $0.user.stamp.map { $0.replica == dot.replica && $0.time >= dot.counter } ?? false }
    }
    /// Each record names its device and the replica of its stamp; all records count as one
    /// kernel's context (one entry per device).
    public func takeCensus(_ census: inout ReplicaCensus) {
        census.largest.context = max(census.largest.context, records.count)
        for record in records {
            let time = record.user.stamp?.time ?? 0
            census.note(Dot(replica: record.device, counter: time))
            if let stamp = record.user.stamp, stamp.replica != record.device { census.note(stamp.dot) }
        }
    }

    // Binary: `ORMap`'s format (a count, then each key and value in key order) and its checks.
    public func encode(to writer: inout BinaryWriter) {
        writer.writeVarint(UInt64(records.count))
        for record in records {
            record.device.encode(to: &writer)
            record.user.encode(to: &writer)
        }
    }

    public init(from reader: inout BinaryReader) throws(BinaryDecodingError) {
        records = try reader.nested { reader throws(BinaryDecodingError) in
            let count = try reader.readCount("map entries", minimumElementSize: 2)
            var records = [Record]()
            records.reserveCapacity(count)
            var previous: ReplicaID?
            for _ in 0..<count {
                let device = try ReplicaID(from: &reader)
                if let previous, device <= previous {
                    throw reader.error(.invalidValue, "expected map keys in ascending order without repeats")
                }
                previous = device
                let user = try LWWRegister<String>(from: &reader)
                if !user.isBottom { records.append(Record(device: device, user: user)) }
            }
            return records
        }
    }

    public init(from decoder: any Decoder) throws {
        let map = try ORMap<ReplicaID, LWWRegister<String>>(from: decoder)
        records = map.sortedKeys.map { Record(device: $0, user: map[$0]!) }
    }
    public func encode(to encoder: any Encoder) throws { try userByDevice.encode(to: encoder) }
}

/// Describes one field of an entity type: how to reach it, merge it, encode it and inspect it,
/// so merging, encoding, projection and conflict detection are written once for all entities.
public final class FieldDescriptor<Record: Mergeable>: @unchecked Sendable {
    // A class: descriptors are iterated on every merge, and copying a struct of ten closures
    // cost ten retains each time (it led the store benchmark's profile).
    // @unchecked: every stored property is an immutable closure or value; key paths are not
    // marked Sendable in the stdlib for every generic instantiation.
    public let name: String
    /// True for what people edit; false for bookkeeping (lifecycle, authors, acceptances).
    public let isContent: Bool
    let merge: (inout Record, Record) -> Void
    let isBottom: (Record) -> Bool
    let copy: (inout Record, Record) -> Void
    let encode: (Record, inout BinaryWriter) -> Void
    let decode: (inout Record, inout BinaryReader) throws(BinaryDecodingError) -> Void
    let liveEvents: (Record) -> [FieldEvent]
    let registers: (Record) -> [(field: String, siblings: [FieldEvent])]
    let knowledge: (Record) -> VersionVector
    let rewriteSibling: (inout Record, String, Int, HLC) -> Record?
    let equals: (Record, Record) -> Bool

    init(
        name: String, isContent: Bool, merge: @escaping (inout Record, Record) -> Void,
        isBottom: @escaping (Record) -> Bool,
        copy: @escaping (inout Record, Record) -> Void, encode: @escaping (Record, inout BinaryWriter) -> Void,
        decode: @escaping (inout Record, inout BinaryReader) throws(BinaryDecodingError) -> Void,
        liveEvents: @escaping (Record) -> [FieldEvent],
        registers: @escaping (Record) -> [(field: String, siblings: [FieldEvent])],
        knowledge: @escaping (Record) -> VersionVector,
        rewriteSibling: @escaping (inout Record, String, Int, HLC) -> Record?,
        equals: @escaping (Record, Record) -> Bool
    ) {
        self.name = name
        self.isContent = isContent
        self.merge = merge
        self.isBottom = isBottom
        self.copy = copy
        self.encode = encode
        self.decode = decode
        self.liveEvents = liveEvents
        self.registers = registers
        self.knowledge = knowledge
        self.rewriteSibling = rewriteSibling
        self.equals = equals
    }

    /// A field reached through two closures, `{ $0.name }` to read and `{ $1(&$0.name) }` to
    /// change in place. (Key paths read better but cost a runtime projection per access, and
    /// merges touch every field of every entity: they were a tenth of the store's profile.)
    public static func field<F: FieldCRDT>(
        _ name: String, _ get: @escaping (Record) -> F, _ modify: @escaping (inout Record, (inout F) -> Void) -> Void,
        content: Bool = true
    ) -> FieldDescriptor {
        FieldDescriptor(
            name: name, isContent: content,
            merge: { entity, other in
                let value = get(other)
                modify(&entity) { $0.merge(value) }
            },
            isBottom: { get($0).isBottom },
            copy: { entity, other in
                let value = get(other)
                modify(&entity) { $0 = value }
            },
            encode: { entity, writer in get(entity).encode(to: &writer) },
            decode: { (entity: inout Record, reader: inout BinaryReader) throws(BinaryDecodingError) in
                let value = try F(from: &reader)
                modify(&entity) { $0 = value }
            },
            liveEvents: { get($0).liveEvents(field: name) },
            registers: { get($0).registers(field: name) },
            knowledge: { get($0).knowledge },
            rewriteSibling: { entity, field, index, stamp in
                var delta: F?
                modify(&entity) { delta = $0.rewriteSibling(field: field, prefix: name, index: index, at: stamp) }
                guard let delta else { return nil }
                var result = Record()
                modify(&result) { $0 = delta }
                return result
            },
            equals: { get($0) == get($1) })
    }
}

/// A set of fields of an entity, by their index in `fields`.
public struct FieldMask: OptionSet, Hashable, Sendable, Codable {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    public static func field(_ index: Int) -> FieldMask { FieldMask(rawValue: 1 << UInt64(index)) }
    public static let all = FieldMask(rawValue: .max)
}
