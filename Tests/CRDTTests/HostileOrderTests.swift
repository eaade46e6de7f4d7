import CRDT
import CRDTTestSupport
import Foundation
import Testing

/// Decoding in an order an adversary chooses (issue #28): version vectors, kernels and sets
/// are sorted once or refused, never built by inserting into the middle of an array (O(n²):
/// one 8 MiB push held a worker for minutes). These inputs are large enough that the old
/// decoders ran for minutes; the cost per MiB is measured by the bad-faith device drill.
@Suite("Hostile orders")
struct HostileOrderTests {
    static func dots(_ count: Int, seed: UInt64) -> [Dot] {
        var random = SeededRandom(seed: seed)
        return (0..<count).map { _ in
            Dot(replica: ReplicaID(random.next() % 5_000 + 1), counter: random.next() % 1_000 + 1)
        }
    }

    @Test(
        "a vector from dots in any order equals the one built entry by entry", arguments: [1, 2, 3, 4, 5] as [UInt64])
    func vectorFromDots(seed: UInt64) {
        let dots = Self.dots(Int(seed) * 700, seed: seed)
        var expected = VersionVector()
        for dot in dots { expected.add(dot) }
        let built = VersionVector(dots)
        #expect(built == expected, "seed \(seed)")
        #expect(zip(built.entries, built.entries.dropFirst()).allSatisfy { $0.replica < $1.replica })
        #expect(VersionVector(dots.reversed()) == expected)
    }

    @Test("a JSON context of 200,000 entries decodes to the sorted vector")
    func largeJSONContext() throws {
        let entries = (1...200_000).reversed().map { #""\#(ReplicaID(UInt64($0)).hex)":\#($0)"# }
        let json = "{" + entries.joined(separator: ",") + "}"
        let vector = try JSONDecoder().decode(VersionVector.self, from: Data(json.utf8))
        #expect(vector.count == 200_000)
        #expect(vector[ReplicaID(77)] == 77)
        #expect(zip(vector.entries, vector.entries.dropFirst()).allSatisfy { $0.replica < $1.replica })
    }

    @Test("a JSON kernel with 100,000 live events in reverse and repeated order decodes normalized")
    func largeJSONKernel() throws {
        let wall: UInt64 = 1_764_000_000_000
        let events = (1...50_000).reversed().flatMap { index -> [String] in
            let stamp = HLC(physical: wall + UInt64(index), replica: ReplicaID(UInt64(index)))
            let event =
                #"{"stamp":\#(String(data: try! JSONEncoder().encode(stamp), encoding: .utf8)!),"value":"v\#(index)"}"#
            return [event, event]
        }
        let json = #"{"live":[\#(events.joined(separator: ","))]}"#
        let kernel = try JSONDecoder().decode(DotKernel<String>.self, from: Data(json.utf8))
        #expect(kernel.live.count == 50_000)
        #expect(kernel.context.count == 50_000)
        #expect(zip(kernel.live, kernel.live.dropFirst()).allSatisfy { $0.stamp < $1.stamp })
    }

    @Test("of events with one stamp, the kernel keeps the largest payload, as before")
    func repeatedStamps() {
        let stamp = HLC(physical: 1_000, replica: ReplicaID(3))
        let kernel = DotKernel(
            live: [
                .init(stamp: stamp, payload: "b"), .init(stamp: stamp, payload: "c"), .init(stamp: stamp, payload: "a"),
            ],
            context: VersionVector())
        #expect(kernel.live.map(\.payload) == ["c"])
        #expect(kernel.context == VersionVector([stamp.dot]))
    }

    @Test("a binary kernel whose extra context is out of replica order is refused")
    func binaryContextOrder() throws {
        func kernelBytes(_ replicas: [UInt64]) -> [UInt8] {
            var writer = BinaryWriter()
            writer.writeVarint(0 << 2 | 2)  // no live event, extra context follows
            writer.writeVarint(UInt64(replicas.count))
            for replica in replicas {
                writer.writeReplica(ReplicaID(replica))
                writer.writeTime(5)
            }
            return writer.bytes
        }
        var ascending = BinaryReader(bytes: kernelBytes(Array(1...20_000)))
        #expect(try DotKernel<Presence>(from: &ascending).context.count == 20_000)
        var reversed = BinaryReader(bytes: kernelBytes(Array((1...20_000).reversed())))
        #expect(throws: BinaryDecodingError.self) { try DotKernel<Presence>(from: &reversed) }
        var repeated = BinaryReader(bytes: kernelBytes([1, 2, 2, 3]))
        #expect(throws: BinaryDecodingError.self) { try DotKernel<Presence>(from: &repeated) }
    }

    @Test("JSON sets and maps that list an element or key twice are refused")
    func jsonRepeats() throws {
        let stamp = String(
            data: try JSONEncoder().encode(HLC(physical: 1_000, replica: ReplicaID(1))), encoding: .utf8)!
        let kernel = #"{"live":[{"stamp":\#(stamp),"value":{}}]}"#
        let set = #"[{"element":"a","kernel":\#(kernel)},{"element":"a","kernel":\#(kernel)}]"#
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(ORSet<String>.self, from: Data(set.utf8)) }
        let once = #"[{"element":"b","kernel":\#(kernel)},{"element":"a","kernel":\#(kernel)}]"#
        #expect(try JSONDecoder().decode(ORSet<String>.self, from: Data(once.utf8)).elements == ["a", "b"])
        let register = #"{"live":[{"stamp":\#(stamp),"value":"x"}]}"#
        let map = #"[{"key":"k","value":\#(register)},{"key":"k","value":\#(register)}]"#
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode(ORMap<String, MVRegister<String>>.self, from: Data(map.utf8))
        }
    }
}
