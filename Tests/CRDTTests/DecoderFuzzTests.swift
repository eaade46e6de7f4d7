import CRDT
import CRDTTestSupport
import Testing

/// The binary decoder against random and mutated bytes: it must either decode or throw a
/// `BinaryDecodingError`, never trap, never allocate beyond what the input describes; and what
/// it does decode must encode and decode again to the same value.
@Suite("Decoder fuzz")
struct DecoderFuzzTests {
    static var cases: Int { FuzzSettings.isLong ? 200_000 : 20_000 }

    /// Valid blobs of a type, from random replica histories.
    static func samples<State>(_ subject: LawSubject<State>, count: Int, seed: UInt64) -> [[UInt8]] {
        (0..<UInt64(count)).map { offset in
            var rng = SeededRandom(seed: seed &+ offset)
            var world = World(subject, replicas: 3, rng: &rng)
            for _ in 0..<rng.int(1...20) { world.step(&rng) }
            return world.states[rng.int(0...2)].encodedBlob()
        }
    }

    static func mutate(_ bytes: [UInt8], _ rng: inout SeededRandom) -> [UInt8] {
        var bytes = bytes
        for _ in 0..<rng.int(1...4) {
            switch rng.int(0...5) {
            case 0 where !bytes.isEmpty:
                let index = rng.int(0...bytes.count - 1)
                bytes[index] ^= 1 << UInt8(rng.int(0...7))
            case 1 where !bytes.isEmpty:
                bytes[rng.int(0...bytes.count - 1)] = rng.pick([
                    0x00, 0x01, 0x7F, 0x80, 0xFF, UInt8.random(in: 0...255, using: &rng),
                ])
            case 2 where !bytes.isEmpty:
                bytes.removeLast(rng.int(1...bytes.count))
            case 3:
                bytes.insert(UInt8.random(in: 0...255, using: &rng), at: rng.int(0...bytes.count))
            case 4 where bytes.count > 2:
                let start = rng.int(2...bytes.count - 1)
                bytes.insert(contentsOf: bytes[start...], at: start)
            default:
                bytes.append(contentsOf: [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F])
            }
        }
        return bytes
    }

    static func fuzz<State>(_ subject: LawSubject<State>, seed: UInt64) {
        var rng = SeededRandom(seed: seed)
        let valid = samples(subject, count: 200, seed: seed)
        var decoded = 0
        var refused = [String: Int]()
        for index in 0..<cases {
            let input: [UInt8]
            if index % 3 == 0 {
                // Random bytes, mostly behind a correct header so the body decoder is reached.
                var bytes = (0..<rng.int(0...40)).map { _ in UInt8.random(in: 0...255, using: &rng) }
                if rng.chance(0.8) { bytes = [State.blobType.rawValue, State.formatVersion] + bytes }
                input = bytes
            } else {
                input = mutate(rng.pick(valid), &rng)
            }
            do throws(BinaryDecodingError) {
                let value = try State(blob: input)
                decoded += 1
                let again = try State(blob: value.encodedBlob())
                #expect(again == value, "seed \(seed) case \(index): re-encoding changed the value")
            } catch {
                refused[error.code.description, default: 0] += 1
                #expect(!error.message.isEmpty)
            }
        }
        print(
            "decoder fuzz \(subject.name): \(cases) inputs, \(decoded) decoded, refused: "
                + refused.sorted { $0.key < $1.key }.map { "\($0.key) ×\($0.value)" }.joined(separator: ", "))
        #expect(decoded + refused.values.reduce(0, +) == cases)
        #expect(refused.count >= 2, "the fuzzer should reach several kinds of refusal")
    }

    @Test func versionVector() {
        Self.fuzz(
            LawSubject<VersionVector>("VersionVector") { _, state, stamp in
                state.merge(VersionVector([stamp.dot]))
                return VersionVector([stamp.dot])
            }, seed: 0xD1)
    }

    @Test func mvRegister() {
        Self.fuzz(
            LawSubject<MVRegister<String>>("MVRegister") { rng, state, stamp in
                rng.chance(0.9) ? state.write(rng.pick(["a", "Zoë", ""]), at: stamp) : state.removeAll()
            }, seed: 0xD2)
    }

    @Test func lwwRegister() {
        Self.fuzz(
            LawSubject<LWWRegister<Int64>>("LWWRegister") { rng, state, stamp in
                state.write(Int64(rng.int(-1_000...1_000)), at: stamp)
            }, seed: 0xD3)
    }

    @Test func orMapOfRecords() {
        Self.fuzz(
            LawSubject<ORMap<UInt64, TestRecord>>("ORMap<record>") { rng, state, stamp in
                let key = UInt64(rng.int(0...3))
                let tag = UInt8(rng.int(0...3))
                let choice = rng.int(0...4)
                return state.update(key) { record in
                    var delta = TestRecord()
                    switch choice {
                    case 0: delta.name = record.name.write("n\(tag)", at: stamp)
                    case 1: delta.score = record.score.write(UInt64(tag), at: stamp)
                    case 2: delta.tags = record.tags.remove(tag)
                    default: delta.tags = record.tags.insert(tag, at: stamp)
                    }
                    return delta
                }
            }, seed: 0xD4)
    }

    @Test("forged counts are refused before anything is allocated")
    func forgedCounts() {
        // An ORSet claiming 2^62 elements in a 12-byte blob.
        var writer = BinaryWriter()
        writer.writeByte(BlobType.orSet.rawValue)
        writer.writeByte(1)
        writer.writeVarint(1 << 62)
        writer.writeBytes([1, 2, 3])
        #expect(throws: BinaryDecodingError.self) { try ORSet<UInt8>(blob: writer.bytes) }
        do {
            _ = try ORSet<UInt8>(blob: writer.bytes)
        } catch {
            #expect(error.code == .tooLarge)
            #expect(error.offset == 2)
            #expect(error.message.contains("4611686018427387904"))
        }
        // A string claiming a gigabyte.
        var string = BinaryWriter()
        string.writeVarint(1 << 30)
        var reader = BinaryReader(bytes: string.bytes)
        #expect(throws: BinaryDecodingError.self) { try reader.readString() }
    }

    @Test("headers say what is wrong: another type, an unknown version, trailing bytes")
    func headers() throws {
        var set = ORSet<String>()
        set.insert("vip", at: HLC(physical: 1, replica: ReplicaID(1)))
        var blob = set.encodedBlob()
        #expect(throws: BinaryDecodingError.self) { try MVRegister<String>(blob: blob) }
        do { _ = try MVRegister<String>(blob: blob) } catch {
            #expect(error.code == .wrongType)
            #expect(error.message.contains("expected a blob of type 0x3"))
        }
        blob[1] = 9
        do { _ = try ORSet<String>(blob: blob) } catch {
            #expect(error.code == .unsupportedVersion)
            #expect(error.message.contains("found version 9"))
        }
        blob[1] = 1
        do { _ = try ORSet<String>(blob: blob + [0]) } catch {
            #expect(error.code == .trailingBytes)
        }
        #expect(try ORSet<String>(blob: blob) == set)
        // An eleven-byte varint.
        var reader = BinaryReader(bytes: [UInt8](repeating: 0xFF, count: 10) + [0x01])
        do { _ = try reader.readVarint() } catch { #expect(error.code == .malformedVarint) }
    }
}
