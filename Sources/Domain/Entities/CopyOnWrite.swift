/// A value kept behind one shared reference and copied only when a shared copy changes — the
/// copy-on-write an `Array` has, for an entity's fields.
///
/// Why: an entity is a struct of ten to thirteen CRDTs, each holding references. Stored inline,
/// every copy (out of a map while iterating, into a step, into the store's writes) was a memcpy
/// of ~400 bytes and ~15 retains, and every drop as many releases: in the profile of 100,000
/// pulled title changes, copying and destroying contacts was 17 % of all CPU. Behind
/// this box a copy is one retain; only a write to a shared copy pays the memberwise copy.
public struct CopyOnWrite<Value: Sendable>: @unchecked Sendable {
    // Unchecked: the box is mutated only through `value`'s `_modify`, which first makes
    // it unique to this copy, so no two threads ever see one box change.
    @usableFromInline final class Box {
        // The box is reached only through `CopyOnWrite`, whose accessors are the exclusivity
        // discipline; dynamic checks on every field access cost more than the copies saved.
        @exclusivity(unchecked) @usableFromInline var value: Value
        @inlinable init(_ value: Value) { self.value = value }
    }

    @usableFromInline var box: Box

    @inlinable public init(_ value: Value) { box = Box(value) }

    @inlinable public var value: Value {
        _read { yield box.value }
        _modify {
            if !isKnownUniquelyReferenced(&box) { box = Box(box.value) }
            yield &box.value
        }
    }

    /// True when both share one box (then their values are equal without looking at them).
    @inlinable public func isShared(with other: CopyOnWrite) -> Bool { box === other.box }
}

extension CopyOnWrite: Equatable where Value: Equatable {
    @inlinable public static func == (lhs: CopyOnWrite, rhs: CopyOnWrite) -> Bool {
        lhs.box === rhs.box || lhs.box.value == rhs.box.value
    }
}
