import CRDT
import CRDTTestSupport
import Testing

@testable import Domain

/// Entities keep their fields behind one shared reference (`CopyOnWrite`), so a copy costs one
/// retain. They must still behave as values: changing a copy — one field through its accessor,
/// or every field through a merge — leaves the original and every other copy as they were, and
/// the shared bottom (`E()`) stays bottom. Compared by encoded bytes taken before the copies
/// changed: `==` would answer "equal" for two copies that still share (or wrongly shared) a box.
@Suite("Entity copies are values")
struct EntityCopyTests {
    static let seeds = FuzzSettings.seeds(count: 100, longCount: 5_000, base: 0xC0B1)

    @Test func contactCopies() { check(Contact.self, RandomEntities.contact) }
    @Test func noteCopies() { check(CallNote.self, RandomEntities.note) }
    @Test func scheduleCopies() { check(ScheduleEntry.self, RandomEntities.schedule) }

    func check<E: Entity>(_ type: E.Type, _ make: (inout RandomEntities) -> E) {
        let everyField = FieldMask(rawValue: 1 << UInt64(E.fields.count) - 1)
        for seed in Self.seeds {
            var random = RandomEntities(seed: seed)
            let a = make(&random)
            let b = make(&random)
            let context = "\(E.kind), seed \(seed) (replay with KRALIKI_SEED=\(seed))"
            let bytesOfA = a.encodedBytes
            let bytesOfB = b.encodedBytes

            var merged = a
            merged.merge(b)
            #expect(merged.encodedBytes == ByDescriptors.merging(a, b).encodedBytes, "the merged copy, \(context)")
            for index in E.fields.indices {
                var cleared = a
                E.fields[index].copy(&cleared, E())
                let others = FieldMask(rawValue: everyField.rawValue & ~FieldMask.field(index).rawValue)
                #expect(
                    cleared.encodedBytes == a.restricted(to: others).encodedBytes,
                    "a copy with field \(E.fields[index].name) cleared, \(context)")
            }
            var fromBottom = E()
            fromBottom.merge(b)

            #expect(a.encodedBytes == bytesOfA, "the original after its copies changed, \(context)")
            #expect(b.encodedBytes == bytesOfB, "the merged-in entity, \(context)")
            #expect(fromBottom.encodedBytes == bytesOfB, "bottom merged with b, \(context)")
            #expect(E().isBottom && E().presentFields.isEmpty, "the shared bottom after its copies changed, \(context)")
        }
    }
}
