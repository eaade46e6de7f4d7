import CRDT
import CRDTTestSupport
import Testing

/// The kernel encodes and decodes a causal kernel without building intermediate arrays: the
/// context entries its live stamps do not imply are found in place, and a decoded kernel is
/// built in its final form. Stored blobs and the server compare these bytes, so they must be
/// exactly what the format's first encoder wrote, and read back to the same kernel.
@Suite("Kernel encoding")
struct KernelEncodingTests {
    /// The encoder as it once was: the implied vector and the extra entries built.
    static func reference(_ kernel: DotKernel<String>, into writer: inout BinaryWriter) {
        let live = kernel.live
        let context = kernel.context
        if live.count == 1, context.count == 1, context.entries[0] == live[0].stamp.dot {
            writer.writeStamp(live[0].stamp, flags: 1, flagBits: 1)
            live[0].payload.encode(to: &writer)
            return
        }
        let implied = VersionVector(live.map(\.stamp.dot))
        let extra = context.entries.filter { $0.counter > implied[$0.replica] }
        writer.writeVarint(UInt64(live.count) << 2 | (extra.isEmpty ? 0 : 2))
        for event in live {
            writer.writeStamp(event.stamp)
            event.payload.encode(to: &writer)
        }
        if !extra.isEmpty {
            writer.writeVarint(UInt64(extra.count))
            for entry in extra {
                writer.writeReplica(entry.replica)
                writer.writeTime(entry.counter)
            }
        }
    }

    @Test(
        "kernels encode as the format's first encoder did, and decode to themselves", arguments: 0..<20 as Range<UInt64>
    )
    func sameBytesAndRoundTrip(seed: UInt64) throws {
        var rng = SeededRandom(seed: seed)
        let replicas = (1...UInt64(rng.int(1...5))).map { ReplicaID($0 * 7) }
        var forms = [0, 0]  // single, general
        for _ in 0..<300 {
            // Random live events and a random context: the kernel widens it to cover them.
            let live = (0..<rng.int(0...4)).map { _ in
                DotKernel<String>.Event(
                    stamp: HLC(time: UInt64(rng.int(1...40)), replica: rng.pick(replicas)),
                    payload: "v\(rng.int(0...3))")
            }
            let context = VersionVector(
                (0..<rng.int(0...4)).map { _ in Dot(replica: rng.pick(replicas), counter: UInt64(rng.int(1...40))) })
            let kernel = DotKernel(live: live, context: context)
            forms[kernel.liveCount == 1 && kernel.context.count == 1 ? 0 : 1] += 1
            var expected = BinaryWriter()
            Self.reference(kernel, into: &expected)
            var actual = BinaryWriter()
            kernel.encode(to: &actual)
            #expect(actual.bytes == expected.bytes, "seed \(seed): \(kernel)")
            var reader = BinaryReader(bytes: actual.bytes)
            let decoded = try DotKernel<String>(from: &reader)
            #expect(decoded == kernel && reader.isAtEnd, "seed \(seed): \(kernel) read back as \(decoded)")
        }
        print("kernel encoding seed \(seed): \(forms[0]) single, \(forms[1]) general")
        #expect(forms.allSatisfy { $0 > 0 })
    }

    /// The encoder writes a map of one or two entries without sorting an array of its keys (an
    /// entity's authors: one allocation per stored entity). Every size must still come out in
    /// key order, whatever order the entries went in, and read back to the same map.
    @Test("maps encode their entries in key order, whatever their size", arguments: 0..<10 as Range<UInt64>)
    func mapsInKeyOrder(seed: UInt64) throws {
        var rng = SeededRandom(seed: seed)
        var sizes = Set<Int>()
        for _ in 0..<200 {
            let keys = Array(Set((0..<rng.int(0...5)).map { _ in ReplicaID(UInt64(rng.int(1...9))) }))
            sizes.insert(keys.count)
            // The same entries inserted in two random orders.
            var entries = keys.map { ($0, LWWRegister(value: "user \($0)", stamp: HLC(time: 5, replica: $0))) }
            var first = [ReplicaID: LWWRegister<String>]()
            for (key, value) in entries { first[key] = value }
            entries.reverse()
            var second = [ReplicaID: LWWRegister<String>](minimumCapacity: 16)
            for (key, value) in entries { second[key] = value }
            var expected = BinaryWriter()
            expected.writeVarint(UInt64(keys.count))
            for key in keys.sorted() {
                key.encode(to: &expected)
                first[key]!.encode(to: &expected)
            }
            for map in [ORMap(first), ORMap(second)] {
                var actual = BinaryWriter()
                map.encode(to: &actual)
                #expect(actual.bytes == expected.bytes, "seed \(seed): \(keys.count) keys")
                var reader = BinaryReader(bytes: actual.bytes)
                let decoded = try ORMap<ReplicaID, LWWRegister<String>>(from: &reader)
                #expect(decoded == map && reader.isAtEnd, "seed \(seed): read back as \(decoded)")
            }
        }
        print("map encoding seed \(seed): sizes \(sizes.sorted())")
        #expect(sizes.isSuperset(of: [0, 1, 2, 3]))
    }
}
