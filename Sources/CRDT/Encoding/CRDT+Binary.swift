// Binary encodings of the CRDT types. Formats (version 1):
//
// VersionVector   count, then per entry in replica order: replica reference, time
// DotKernel       The usual case, one live event and a context that is just its dot:
//                   stamp with flag bit 1 (the stamp's tag varint << 1 | 1), payload.
//                 Otherwise: head = liveCount << 2 | hasExtraContext << 1 (flag bit 0);
//                   per live event in stamp order: stamp, payload;
//                   if hasExtraContext: count, then per entry: replica reference, time.
//                   Only context entries above the largest live stamp of their replica are
//                   written; the rest is implied by the live stamps.
// MVRegister      its kernel
// LWWRegister     0, or 1 then stamp, value
// ORSet           count, then per element in ascending order: element, kernel
// ORMap           count, then per key in ascending order: key, value

extension VersionVector: BinaryCodable, BinaryBlob {
    public static var blobType: BlobType { .versionVector }

    @inlinable
    public func encode(to writer: inout BinaryWriter) {
        writer.writeVarint(UInt64(entries.count))
        for entry in entries {
            writer.writeReplica(entry.replica)
            writer.writeTime(entry.counter)
        }
    }

    @inlinable
    public init(from reader: inout BinaryReader) throws(BinaryDecodingError) {
        let count = try reader.readCount("version vector entries", minimumElementSize: 2)
        var vector = VersionVector(capacity: count)
        try vector.appendEntries(count, from: &reader, "version vector entries")
        self = vector
    }

    /// Reads `count` entries (replica reference, time) in ascending replica order, as the
    /// encoder writes them, each above every entry already here: each is appended. Entries out of
    /// order are refused — added one by one they would be inserted into the middle, O(n²) over a
    /// hostile context.
    @inlinable
    mutating func appendEntries(
        _ count: Int, from reader: inout BinaryReader, _ what: @autoclosure () -> String
    ) throws(BinaryDecodingError) {
        var previous = storage.last?.replica
        for _ in 0..<count {
            let replica = try reader.readReplica()
            if let previous, replica <= previous {
                throw reader.error(
                    .invalidValue,
                    "expected \(what()) in ascending replica order, found \(replica.hex) after \(previous.hex)")
            }
            previous = replica
            add(Dot(replica: replica, counter: try reader.readTime()))
        }
    }
}

extension DotKernel: BinaryCodable where Payload: BinaryCodable {
    @inlinable
    public func encode(to writer: inout BinaryWriter) {
        let live: [Event]
        let context: VersionVector
        switch storage {
        case .single(let stamp, let payload):
            writer.writeStamp(stamp, flags: 1, flagBits: 1)
            payload.encode(to: &writer)
            return
        case .general(let events, let seen):
            live = events
            context = seen
        }
        // Context entries the live stamps do not imply, found without building the implied
        // vector or the list (two allocations per field, a fifth of encoding a pulled entity):
        // a kernel holds a few live events, so each entry looks through them.
        @inline(__always) func isExtra(_ entry: Dot) -> Bool {
            var implied: UInt64 = 0
            for event in live where event.stamp.replica == entry.replica { implied = max(implied, event.stamp.time) }
            return entry.counter > implied
        }
        var extraCount = 0
        for entry in context.entries where isExtra(entry) { extraCount += 1 }
        writer.writeVarint(UInt64(live.count) << 2 | (extraCount == 0 ? 0 : 2))
        for event in live {
            writer.writeStamp(event.stamp)
            event.payload.encode(to: &writer)
        }
        if extraCount > 0 {
            writer.writeVarint(UInt64(extraCount))
            for entry in context.entries where isExtra(entry) {
                writer.writeReplica(entry.replica)
                writer.writeTime(entry.counter)
            }
        }
    }

    @inlinable
    public init(from reader: inout BinaryReader) throws(BinaryDecodingError) {
        let start = reader.offset
        let head = try reader.readVarint("a causal kernel")
        if head & 1 == 1 {
            // Straight into the inline form: building the event array and the one-dot context
            // that `init(normalizing:_:)` would reduce to it cost two allocations per field, and
            // most fields of a stored entity are this form.
            let stamp = try reader.readStamp(tag: head >> 1, start: start)
            self.init(single: stamp, try Payload(from: &reader))
            return
        }
        let liveCount = head >> 2
        guard liveCount <= UInt64(reader.remaining) else {
            throw BinaryDecodingError(
                code: .tooLarge, offset: start,
                message:
                    "expected a count of live events that fits in the \(reader.remaining) bytes left, found \(liveCount)"
            )
        }
        var live = [Event]()
        live.reserveCapacity(Int(liveCount))
        for _ in 0..<Int(liveCount) {
            let stamp = try reader.readStamp()
            if let last = live.last, stamp <= last.stamp {
                throw reader.error(
                    .invalidValue, "expected live events in ascending stamp order, found \(stamp) after \(last.stamp)")
            }
            live.append(Event(stamp: stamp, payload: try Payload(from: &reader)))
        }
        // Room for the extra entries and the live events' dots at once: grown entry by entry,
        // the context of an event that overwrote another replica's was allocated twice.
        let extraCount = head & 2 == 2 ? try reader.readCount("causal context entries", minimumElementSize: 2) : 0
        var context = VersionVector(capacity: extraCount + live.count)
        try context.appendEntries(extraCount, from: &reader, "causal context entries")
        // The events were checked to be in ascending stamp order above, so what
        // `init(live:context:)` adds — sorting, dropping repeated stamps — is not needed.
        Self.widen(&context, by: live)
        self.init(normalizing: live, context)
    }
}

extension MVRegister: BinaryCodable, BinaryBlob where Value: BinaryCodable {
    public static var blobType: BlobType { .mvRegister }

    @inlinable
    public func encode(to writer: inout BinaryWriter) { kernel.encode(to: &writer) }

    @inlinable
    public init(from reader: inout BinaryReader) throws(BinaryDecodingError) {
        self.init(kernel: try DotKernel(from: &reader))
    }
}

extension LWWRegister: BinaryCodable, BinaryBlob where Value: BinaryCodable {
    public static var blobType: BlobType { .lwwRegister }

    @inlinable
    public func encode(to writer: inout BinaryWriter) {
        guard let stamp, let value else {
            writer.writeByte(0)
            return
        }
        writer.writeByte(1)
        writer.writeStamp(stamp)
        value.encode(to: &writer)
    }

    @inlinable
    public init(from reader: inout BinaryReader) throws(BinaryDecodingError) {
        switch try reader.readByte("a register presence flag") {
        case 0: self.init()
        case 1:
            let stamp = try reader.readStamp()
            self.init(value: try Value(from: &reader), stamp: stamp)
        case let other: throw reader.error(.invalidValue, "expected a register presence flag (0 or 1), found \(other)")
        }
    }
}

extension ORSet: BinaryCodable, BinaryBlob where Element: BinaryCodable {
    public static var blobType: BlobType { .orSet }

    @inlinable
    public func encode(to writer: inout BinaryWriter) {
        writer.writeVarint(UInt64(entries.count))
        for entry in entries {
            entry.element.encode(to: &writer)
            entry.kernel.encode(to: &writer)
        }
    }

    @inlinable
    public init(from reader: inout BinaryReader) throws(BinaryDecodingError) {
        self = try reader.nested { reader throws(BinaryDecodingError) in
            let count = try reader.readCount("set elements", minimumElementSize: 2)
            var entries = [Entry]()
            entries.reserveCapacity(count)
            for _ in 0..<count {
                let element = try Element(from: &reader)
                if let last = entries.last, element <= last.element {
                    throw reader.error(.invalidValue, "expected set elements in ascending order without repeats")
                }
                let kernel = try DotKernel<Presence>(from: &reader)
                if !kernel.isBottom { entries.append(Entry(element: element, kernel: kernel)) }
            }
            return ORSet(uncheckedEntries: entries)
        }
    }
}

extension ORMap: BinaryCodable, BinaryBlob where Key: BinaryCodable, Value: BinaryCodable {
    public static var blobType: BlobType { .orMap }

    @inlinable
    public func encode(to writer: inout BinaryWriter) {
        writer.writeVarint(UInt64(valueByKey.count))
        @inline(__always) func write(_ entry: (key: Key, value: Value)) {
            entry.key.encode(to: &writer)
            entry.value.encode(to: &writer)
        }
        // Sorted so equal maps encode to equal bytes on every replica. Most maps stored here
        // hold one or two entries (an entity's authors: its creator and a later editor), put
        // in order without sorting an array of keys (an allocation per stored entity).
        var entries = valueByKey.makeIterator()
        switch valueByKey.count {
        case 0: break
        case 1: write(entries.next()!)
        case 2:
            let a = entries.next()!
            let b = entries.next()!
            write(a.key < b.key ? a : b)
            write(a.key < b.key ? b : a)
        default: for entry in valueByKey.sorted(by: { $0.key < $1.key }) { write(entry) }
        }
    }

    @inlinable
    public init(from reader: inout BinaryReader) throws(BinaryDecodingError) {
        self = try reader.nested { reader throws(BinaryDecodingError) in
            let count = try reader.readCount("map entries", minimumElementSize: 2)
            var valueByKey = [Key: Value](minimumCapacity: count)
            var previous: Key?
            for _ in 0..<count {
                let key = try Key(from: &reader)
                if let previous, key <= previous {
                    throw reader.error(.invalidValue, "expected map keys in ascending order without repeats")
                }
                previous = key
                let value = try Value(from: &reader)
                if !value.isBottom { valueByKey[key] = value }
            }
            return ORMap(uncheckedValueByKey: valueByKey)  // bottom values were skipped above
        }
    }
}
