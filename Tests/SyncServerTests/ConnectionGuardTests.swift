import CRDTTestSupport
import LocalStorage
import StoreSupport
import Testing

@testable import SyncServer

/// The frame scanner behind the server's "GOAWAY ignored" limit: it must find every GOAWAY
/// however the byte stream is cut into writes, and nothing else. (The limits themselves are
/// drilled against the running server in HTTP2AbuseDrillTests.)
@Suite("Connection guard")
struct ConnectionGuardTests {
    @Test("the frame scanner finds each GOAWAY in streams of random frames cut at random points")
    func scannerFollowsFrames() {
        let seeds = FuzzSettings.seeds(count: 200, longCount: 20_000, base: 0x60A7)
        var frames = 0
        for seed in seeds {
            var random = SeededRandom(seed: seed)
            // Random frames (types 0–9, payloads 0–300 bytes of anything, including 0x07 bytes
            // that must not be taken for a frame type), and where each GOAWAY header ends.
            var stream = [UInt8]()
            var goAwayHeaderEnds = [Int]()
            for _ in 0..<random.int(1...40) {
                let type = UInt8(random.int(0...9))
                let length = random.int(0...300)
                stream += [UInt8(length >> 16), UInt8(length >> 8 & 0xff), UInt8(length & 0xff), type, 0, 0, 0, 0, 1]
                if type == HTTP2FrameScanner.goAway { goAwayHeaderEnds.append(stream.count - 1) }
                stream += (0..<length).map { _ in random.chance(0.2) ? 0x07 : UInt8(random.int(0...255)) }
                frames += 1
            }
            // Cut into writes of 1 byte up to a third of the stream.
            var scanner = HTTP2FrameScanner()
            var writes = [Range<Int>]()
            var reported = Set<Int>()
            while (writes.last?.upperBound ?? 0) < stream.count {
                let start = writes.last?.upperBound ?? 0
                let end = min(stream.count, start + random.int(1...max(1, stream.count / 3)))
                if scanner.scan(stream[start..<end]) { reported.insert(writes.count) }
                writes.append(start..<end)
            }
            // Exactly the writes that held the last byte of a GOAWAY header.
            let expected = Set(goAwayHeaderEnds.map { end in writes.firstIndex { $0.contains(end) }! })
            #expect(
                reported == expected,
                "seed \(seed) (replay with KRALIKI_SEED=\(seed)): writes \(writes), reported \(reported.sorted()), expected \(expected.sorted())"
            )
        }
        print("connection guard: \(seeds.count) seeds, \(frames) frames scanned")
    }
}
