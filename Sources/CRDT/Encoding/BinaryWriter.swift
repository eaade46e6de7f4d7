/// Writes the compact binary encoding.
///
/// Integers are LEB128 varints. Replica IDs and HLC stamps are written once per blob and then
/// referred to by index, because a record's fields are usually stamped by one replica, often in
/// one event: that is what keeps a ten-field record under 200 bytes.
public struct BinaryWriter: Sendable {
    public var bytes: [UInt8] { _bytes }
    @usableFromInline var _bytes: [UInt8]
    @usableFromInline var replicaIndex = WrittenIndex<ReplicaID>()
    @usableFromInline var stampIndex = WrittenIndex<HLC>()

    @inlinable
    public init(capacity: Int = 64) {
        _bytes = []
        _bytes.reserveCapacity(capacity)
    }

    @inlinable
    public mutating func writeByte(_ byte: UInt8) {
        _bytes.append(byte)
    }

    @inlinable
    public mutating func writeBytes(_ data: some Sequence<UInt8>) {
        _bytes.append(contentsOf: data)
    }

    /// Unsigned LEB128: 7 bits per byte, high bit set on all but the last.
    @inlinable
    public mutating func writeVarint(_ value: UInt64) {
        var value = value
        while value >= 0x80 {
            _bytes.append(UInt8(truncatingIfNeeded: value) | 0x80)
            value >>= 7
        }
        _bytes.append(UInt8(value))
    }

    /// Signed integers as zig-zag varints, so small negative numbers stay small.
    @inlinable
    public mutating func writeSignedVarint(_ value: Int64) {
        writeVarint(UInt64(bitPattern: (value << 1) ^ (value >> 63)))
    }

    @inlinable
    public mutating func writeFixed64(_ value: UInt64) {
        for shift in stride(from: 0, to: 64, by: 8) { _bytes.append(UInt8(truncatingIfNeeded: value >> UInt64(shift))) }
    }

    /// A length-prefixed UTF-8 string.
    @inlinable
    public mutating func writeString(_ string: String) {
        var string = string
        string.withUTF8 { utf8 in
            writeVarint(UInt64(utf8.count))
            _bytes.append(contentsOf: utf8)
        }
    }

    /// A replica ID: index+1 of one already written in this blob, or 0 and then its 8 _bytes.
    @inlinable
    public mutating func writeReplica(_ replica: ReplicaID) {
        if let index = replicaIndex.position(of: replica) {
            writeVarint(UInt64(index) + 1)
        } else {
            writeVarint(0)
            replicaIndex.append(replica)
            writeFixed64(replica.rawValue)
        }
    }

    /// A packed HLC time: `physical << 1 | hasLogical`, then the logical counter if non-zero
    /// (it almost always is zero, and then the stamp costs six bytes).
    @inlinable
    public mutating func writeTime(_ time: UInt64) {
        let physical = time >> 16
        let logical = time & 0xFFFF
        writeVarint(physical << 1 | (logical == 0 ? 0 : 1))
        if logical != 0 { writeVarint(logical) }
    }

    /// An HLC stamp. One tag varint says what follows:
    /// `0` a new stamp of a new replica (8 bytes, then the time); `2k+1` a new stamp of the
    /// k-th replica already written (then the time); `2k+2` the k-th stamp already written.
    @inlinable
    public mutating func writeStamp(_ stamp: HLC) {
        writeStamp(stamp, flags: 0, flagBits: 0)
    }

    /// An HLC stamp whose tag varint also carries `flagBits` low bits of `flags`, saving a byte
    /// where a value would otherwise need a header of its own (see `DotKernel`'s encoding).
    @inlinable
    public mutating func writeStamp(_ stamp: HLC, flags: UInt64, flagBits: Int) {
        precondition(
            flagBits >= 0 && flagBits < 8 && flags < 1 << UInt64(flagBits), "flags do not fit in \(flagBits) bits")
        if let index = stampIndex.position(of: stamp) {
            writeVarint((UInt64(index) * 2 + 2) << UInt64(flagBits) | flags)
            return
        }
        stampIndex.append(stamp)
        if let index = replicaIndex.position(of: stamp.replica) {
            writeVarint((UInt64(index) * 2 + 1) << UInt64(flagBits) | flags)
        } else {
            writeVarint(flags)
            replicaIndex.append(stamp.replica)
            writeFixed64(stamp.replica.rawValue)
        }
        writeTime(stamp.time)
    }
}

/// The replicas or stamps a blob has written so far, each referred to later by its position.
/// Searched linearly while there are few — an entity's fields are usually stamped by a replica
/// or two, in an event or two, and hashing into two dictionaries (each allocated per blob) was a
/// quarter of encoding an entity in a profile of a pull — and through a dictionary
/// once there are many (a pull response of 1,000 changes). The first four are kept inline: an
/// array per index and blob, grown as keys came, was 5 of the ~43 allocations per pulled title
/// change.
@usableFromInline struct WrittenIndex<Key: Hashable & Sendable>: Sendable {
    /// Beyond this many keys, `positions` holds them all.
    @usableFromInline static var linearLimit: Int { 16 }
    @usableFromInline var first: (Key?, Key?, Key?, Key?) = (nil, nil, nil, nil)
    /// The keys after the first four.
    @usableFromInline var rest: [Key] = []
    @usableFromInline var count = 0
    @usableFromInline var positions: [Key: Int] = [:]

    @inlinable init() {}

    @inlinable func position(of key: Key) -> Int? {
        if count > Self.linearLimit { return positions[key] }
        // An empty slot is nil, never equal to a key.
        if first.0 == key { return 0 }
        if first.1 == key { return 1 }
        if first.2 == key { return 2 }
        if first.3 == key { return 3 }
        return rest.firstIndex(of: key).map { $0 + 4 }
    }

    /// Adds a key `position(of:)` does not find; its position is the number written before it.
    @inlinable mutating func append(_ key: Key) {
        switch count {
        case 0: first.0 = key
        case 1: first.1 = key
        case 2: first.2 = key
        case 3: first.3 = key
        default: rest.append(key)
        }
        count += 1
        if count == Self.linearLimit + 1 {
            let all = [first.0!, first.1!, first.2!, first.3!] + rest
            positions = Dictionary(uniqueKeysWithValues: zip(all, all.indices))
        } else if count > Self.linearLimit + 1 {
            positions[key] = count - 1
        }
    }
}
