import CRDT
import CRDTTestSupport
import Foundation
import Testing

@testable import Domain

/// `Authors` was once an `ORMap<ReplicaID, LWWRegister<String>>`; now it keeps its
/// records in an array, in device order. Stored entities and the server compare its bytes, and
/// replicas that still run the map merge with it, so it must be that map in every observable
/// way: the same merges, the same binary and JSON encodings, the same decoding and the same
/// refusals. Seeded random records, written and merged in random orders, against the map.
@Suite("Authors")
struct AuthorsTests {
    /// Records by random devices and users, each written by its own clock, as `record` does.
    static func randomAuthors(_ rng: inout SeededRandom, clocks: inout [HybridLogicalClock]) -> Authors {
        var authors = Authors()
        for _ in 0..<rng.int(0...4) {
            let device = rng.int(0...(clocks.count - 1))
            let author = Author(user: "user \(rng.int(0...2))", device: clocks[device].replica)
            authors.record(author, at: clocks[device].now(wall: UInt64(rng.int(1...50))))
        }
        return authors
    }

    /// The map it was, built from the records (checked against `userByDevice` below).
    static func map(_ authors: Authors) -> ORMap<ReplicaID, LWWRegister<String>> {
        var map = ORMap<ReplicaID, LWWRegister<String>>()
        for record in authors.records { map.merge(ORMap([record.device: record.user])) }
        return map
    }

    @Test("merges, encodes and decodes as the map it replaced", arguments: 0..<10 as Range<UInt64>)
    func sameAsTheMap(seed: UInt64) throws {
        var rng = SeededRandom(seed: seed)
        var clocks = (1...4).map { HybridLogicalClock(replica: ReplicaID(UInt64($0) * 3)) }
        var sizes = Set<Int>()
        for _ in 0..<200 {
            let a = Self.randomAuthors(&rng, clocks: &clocks)
            let b = Self.randomAuthors(&rng, clocks: &clocks)
            #expect(a.records.map(\.device) == a.records.map(\.device).sorted(), "seed \(seed): records in order")
            #expect(Set(a.records.map(\.device)).count == a.records.count, "seed \(seed): one record per device")
            var merged = a
            merged.merge(b)
            var mapMerged = Self.map(a)
            mapMerged.merge(Self.map(b))
            sizes.insert(merged.records.count)
            #expect(Self.map(merged) == mapMerged, "seed \(seed): \(a) merged with \(b)")
            #expect(merged.userByDevice == mapMerged, "seed \(seed)")
            var other = b
            other.merge(a)
            #expect(other == merged, "seed \(seed): the merge commutes")
            let dots: [Dot] = mapMerged.valueByKey.values.compactMap { $0.stamp?.dot }
            // `VersionVector.newestDot`'s rule: the greatest counter, the smaller replica on a tie.
            let newest = dots.max { $0.counter != $1.counter ? $0.counter < $1.counter : $0.replica > $1.replica }
            #expect(merged.newestDot == newest, "seed \(seed): newest dot")

            var bytes = BinaryWriter()
            merged.encode(to: &bytes)
            var mapBytes = BinaryWriter()
            mapMerged.encode(to: &mapBytes)
            #expect(bytes.bytes == mapBytes.bytes, "seed \(seed): the map's bytes")
            var reader = BinaryReader(bytes: bytes.bytes)
            let decoded = try Authors(from: &reader)
            #expect(decoded == merged && reader.isAtEnd, "seed \(seed): read back")

            let encoder = JSONEncoder()
            encoder.outputFormatting = .sortedKeys  // an object's keys come out in any order otherwise
            let json = try encoder.encode(merged)
            #expect(json == (try encoder.encode(mapMerged)), "seed \(seed): the map's JSON")
            #expect(try JSONDecoder().decode(Authors.self, from: json) == merged, "seed \(seed): JSON read back")
        }
        print("authors seed \(seed): merged sizes \(sizes.sorted())")
        #expect(sizes.isSuperset(of: [0, 1, 2, 3]))
    }

    @Test("refuses what the map refused: keys out of order, repeated keys")
    func refusals() throws {
        let register = LWWRegister(value: "ana", stamp: HLC(time: 5, replica: ReplicaID(1)))
        for devices in [[ReplicaID(2), ReplicaID(1)], [ReplicaID(1), ReplicaID(1)]] {
            var writer = BinaryWriter()
            writer.writeVarint(UInt64(devices.count))
            for device in devices {
                device.encode(to: &writer)
                register.encode(to: &writer)
            }
            var reader = BinaryReader(bytes: writer.bytes)
            #expect(throws: BinaryDecodingError.self) { try Authors(from: &reader) }
            var mapReader = BinaryReader(bytes: writer.bytes)
            #expect(throws: BinaryDecodingError.self) { try ORMap<ReplicaID, LWWRegister<String>>(from: &mapReader) }
        }
        // A bottom register is skipped, as the map skipped it.
        var writer = BinaryWriter()
        writer.writeVarint(2)
        ReplicaID(1).encode(to: &writer)
        LWWRegister<String>().encode(to: &writer)
        ReplicaID(2).encode(to: &writer)
        register.encode(to: &writer)
        var reader = BinaryReader(bytes: writer.bytes)
        let decoded = try Authors(from: &reader)
        #expect(decoded.records.map(\.device) == [ReplicaID(2)])
    }
}
