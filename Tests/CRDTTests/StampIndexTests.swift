import CRDT
import CRDTTestSupport
import Testing

/// A blob writes each replica and stamp once and refers to it by position afterwards. The
/// writer finds earlier ones by a linear search while there are few and through a dictionary
/// past 16: the bytes must be exactly what a dictionary-only writer wrote, on both
/// sides of that switch, and read back as written.
@Suite("Stamp and replica references")
struct StampIndexTests {
    /// The writer as it once was: one dictionary per kind of reference.
    struct ReferenceWriter {
        var writer = BinaryWriter()
        var replicas = [ReplicaID: Int]()
        var stamps = [HLC: Int]()

        mutating func replica(_ replica: ReplicaID) {
            if let index = replicas[replica] {
                writer.writeVarint(UInt64(index) + 1)
            } else {
                writer.writeVarint(0)
                replicas[replica] = replicas.count
                writer.writeFixed64(replica.rawValue)
            }
        }

        mutating func stamp(_ stamp: HLC, flags: UInt64, flagBits: Int) {
            if let index = stamps[stamp] {
                writer.writeVarint((UInt64(index) * 2 + 2) << UInt64(flagBits) | flags)
                return
            }
            stamps[stamp] = stamps.count
            if let index = replicas[stamp.replica] {
                writer.writeVarint((UInt64(index) * 2 + 1) << UInt64(flagBits) | flags)
            } else {
                writer.writeVarint(flags)
                replicas[stamp.replica] = replicas.count
                writer.writeFixed64(stamp.replica.rawValue)
            }
            writer.writeTime(stamp.time)
        }
    }

    enum Item: Equatable {
        case replica(ReplicaID)
        case stamp(HLC, flags: UInt64)
    }

    @Test(
        "stamps and replicas, few or many, encode as a dictionary-only writer did and read back",
        arguments: 0..<40 as Range<UInt64>)
    func sameBytesAndRoundTrip(seed: UInt64) throws {
        var rng = SeededRandom(seed: seed)
        // Pools from a handful (the linear search only) to well past 16 of each.
        let replicaPool = (0..<Int.random(in: 1...40, using: &rng)).map { _ in ReplicaID(rng.next() % 1_000 + 1) }
        let stampPool = (0..<Int.random(in: 1...60, using: &rng)).map { _ in
            HLC(
                physical: rng.next() % 1_000_000, logical: UInt16.random(in: 0...2, using: &rng),
                replica: replicaPool.randomElement(using: &rng)!)
        }
        let flagBits = 2
        var items = [Item]()
        for _ in 0..<Int.random(in: 1...300, using: &rng) {
            if Int.random(in: 0..<4, using: &rng) == 0 {
                items.append(.replica(replicaPool.randomElement(using: &rng)!))
            } else {
                items.append(.stamp(stampPool.randomElement(using: &rng)!, flags: rng.next() % 4))
            }
        }
        var writer = BinaryWriter()
        var reference = ReferenceWriter()
        for item in items {
            switch item {
            case .replica(let replica):
                writer.writeReplica(replica)
                reference.replica(replica)
            case .stamp(let stamp, let flags):
                writer.writeStamp(stamp, flags: flags, flagBits: flagBits)
                reference.stamp(stamp, flags: flags, flagBits: flagBits)
            }
        }
        #expect(
            writer.bytes == reference.writer.bytes,
            "seed \(seed): \(replicaPool.count) replicas, \(stampPool.count) stamps, \(items.count) references")
        var reader = BinaryReader(bytes: writer.bytes)
        var read = [Item]()
        for item in items {
            switch item {
            case .replica: read.append(.replica(try reader.readReplica()))
            case .stamp:
                let (stamp, flags) = try reader.readStamp(flagBits: flagBits)
                read.append(.stamp(stamp, flags: flags))
            }
        }
        #expect(read == items, "seed \(seed)")
        #expect(reader.isAtEnd, "seed \(seed)")
    }
}
