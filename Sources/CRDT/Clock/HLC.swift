/// A hybrid logical clock (HLC) reading: physical milliseconds, a logical counter and the
/// replica that made it.
///
/// HLCs are totally ordered by (physical, logical, replica). They stay close to wall-clock
/// time, yet a stamp made after observing another is always greater than it, whatever the
/// device's wall clock says. Physical time and the logical counter are packed into one
/// 64-bit ``time`` (48 bits of milliseconds since 1970, good until the year 10889, and 16
/// bits of counter), so an HLC is 16 bytes and compares with two integer comparisons.
///
/// Every stamp a replica makes is strictly greater than the one before, so an HLC also serves
/// as that replica's ``Dot``: the causal identity of one event.
///
/// ```swift
/// var clock = HybridLogicalClock(replica: me)
/// let stamp = clock.now(wall: 1_764_000_000_000)
/// ```
///
/// - SeeAlso: Kulkarni, Demirbas et al., "Logical Physical Clocks and Consistent Snapshots in
///   Globally Distributed Databases" (2014).
public struct HLC: Hashable, Comparable, Sendable {
    /// `physical << 16 | logical`.
    public let time: UInt64
    public let replica: ReplicaID

    public static let maxPhysical: UInt64 = (1 << 48) - 1
    public static let maxLogical: UInt16 = .max

    @inlinable
    public init(time: UInt64, replica: ReplicaID) {
        self.time = time
        self.replica = replica
    }

    public init(physical: UInt64, logical: UInt16 = 0, replica: ReplicaID) {
        precondition(physical <= HLC.maxPhysical, "physical time \(physical) ms does not fit in 48 bits")
        self.time = physical << 16 | UInt64(logical)
        self.replica = replica
    }

    /// Milliseconds since 1970-01-01T00:00:00Z.
    @inlinable public var physical: UInt64 { time >> 16 }
    @inlinable public var logical: UInt16 { UInt16(truncatingIfNeeded: time) }

    /// This stamp as the causal identity of the event it marks.
    @inlinable public var dot: Dot { Dot(replica: replica, counter: time) }

    @inlinable
    public static func < (lhs: HLC, rhs: HLC) -> Bool {
        lhs.time != rhs.time ? lhs.time < rhs.time : lhs.replica.rawValue < rhs.replica.rawValue
    }

    /// The persistable text form: `PPPPPPPPPPPP-LLLL-RRRRRRRRRRRRRRRR` (hex, fixed width), which
    /// sorts as text exactly as the stamps sort.
    public var text: String {
        String(hexFields: (physical, 12), (UInt64(logical), 4), (replica.rawValue, 16), separator: UInt8(ascii: "-"))
    }

    /// Parses ``text``; `nil` for anything else.
    public init?(text: some StringProtocol) {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0].utf8.count == 12, parts[1].utf8.count == 4,
            let physical = UInt64(parts[0], radix: 16), physical <= HLC.maxPhysical,
            let logical = UInt16(parts[1], radix: 16),
            let replica = ReplicaID(hex: parts[2])
        else { return nil }
        self.init(physical: physical, logical: logical, replica: replica)
    }

    /// The 16-byte big-endian form (time, then replica): byte order equals stamp order, so it
    /// can be a sortable key in a database.
    public var bytes: [UInt8] {
        var result = [UInt8]()
        result.reserveCapacity(16)
        for shift in stride(from: 56, through: 0, by: -8) {
            result.append(UInt8(truncatingIfNeeded: time >> UInt64(shift)))
        }
        for shift in stride(from: 56, through: 0, by: -8) {
            result.append(UInt8(truncatingIfNeeded: replica.rawValue >> UInt64(shift)))
        }
        return result
    }

    /// Reads ``bytes``; `nil` unless given exactly 16 bytes.
    public init?(bytes: some Collection<UInt8>) {
        guard bytes.count == 16 else { return nil }
        var time: UInt64 = 0
        var replica: UInt64 = 0
        for (index, byte) in bytes.enumerated() {
            if index < 8 { time = time << 8 | UInt64(byte) } else { replica = replica << 8 | UInt64(byte) }
        }
        self.init(time: time, replica: ReplicaID(replica))
    }
}

extension HLC: CustomStringConvertible {
    public var description: String { text }
}

extension HLC: Codable {
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        guard let stamp = HLC(text: text) else {
            throw DecodingError.dataCorruptedError(
                in: container,
                debugDescription: "expected an HLC like 0019a0b1c2d3-0000-00000000000000ff, found \"\(text)\"")
        }
        self = stamp
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(text)
    }
}
