/// An add-wins observed-remove set (ORSet).
///
/// Each insertion is an event with its own ``HLC`` stamp; a removal removes the insertions its
/// replica has seen. An insertion concurrent with a removal therefore survives: add wins.
/// Removing an element keeps its causal context (a few bytes) so a late copy of an old
/// insertion cannot bring it back; those are collected later by the sync layer once every
/// replica has seen the removal.
///
/// Elements are kept in a sorted array: the sets of a contact (phones, e-mails, tags) hold a
/// handful of elements, where an array is several times smaller than a hash table.
///
/// ```swift
/// var tags = ORSet<String>()
/// let delta = tags.insert("vip", at: clock.now(wall: wallMillis))
/// tags.remove("vip")
/// ```
///
/// - Complexity: merge is O(n + m) in the elements; `insert`/`remove` are O(n) (array insert),
///   `contains` is O(log n).
/// - SeeAlso: Shapiro et al., "A comprehensive study of Convergent and Commutative Replicated
///   Data Types" (INRIA RR-7506, 2011), §3.3.5; Bieniusa et al., "An optimized conflict-free
///   replicated set" (2012).
public struct ORSet<Element: Hashable & Comparable & Sendable>: Sendable {
    /// One element's insertions and what has been seen of it.
    public struct Entry: Hashable, Sendable {
        public let element: Element
        @inlinable public var kernel: DotKernel<Presence> { _kernel }
        @usableFromInline internal var _kernel: DotKernel<Presence>

        @inlinable
        public init(element: Element, kernel: DotKernel<Presence>) {
            self.element = element
            _kernel = kernel
        }
    }

    /// Entries sorted by element, removed elements included (with an empty kernel).
    @inlinable public var entries: [Entry] { _entries }
    @usableFromInline internal var _entries: [Entry]

    @inlinable
    public init() {
        _entries = []
    }

    /// A set from entries (sorted and de-duplicated here; bottom kernels dropped).
    ///
    /// - Complexity: O(n log n) for entries in any order: sorted once (stable, so entries of
    ///   one element merge in the order given), never inserted into the middle.
    public init(entries: some Sequence<Entry>) {
        var sorted = entries.filter { !$0.kernel.isBottom }
        if sorted.count > 1 {
            sorted = sorted.enumerated().sorted {
                $0.element.element != $1.element.element
                    ? $0.element.element < $1.element.element : $0.offset < $1.offset
            }.map(\.element)
        }
        var merged = [Entry]()
        merged.reserveCapacity(sorted.count)
        for entry in sorted {
            if let last = merged.last, last.element == entry.element {
                merged[merged.count - 1]._kernel.merge(entry.kernel)
            } else {
                merged.append(entry)
            }
        }
        self.init(uncheckedEntries: merged)
    }

    /// The elements present, in order.
    @inlinable
    public var elements: [Element] {
        _entries.compactMap { $0._kernel.isEmpty ? nil : $0.element }
    }

    @inlinable
    public var count: Int {
        _entries.reduce(0) { $0 + ($1._kernel.isEmpty ? 0 : 1) }
    }

    @inlinable public var isEmpty: Bool { count == 0 }

    @inlinable
    public func contains(_ element: Element) -> Bool {
        guard let index = index(of: element) else { return false }
        return !entries[index].kernel.isEmpty
    }

    /// The stamps of the live insertions of `element` (who added it, and when).
    public func stamps(of element: Element) -> [HLC] {
        guard let index = index(of: element) else { return [] }
        return entries[index].kernel.live.map(\.stamp)
    }

    /// Inserts `element` and returns the delta.
    ///
    /// - Precondition: `stamp` comes from this replica's clock after everything merged here.
    @inlinable @discardableResult
    public mutating func insert(_ element: Element, at stamp: HLC) -> ORSet {
        let position = insertionPoint(of: element)
        if position < entries.count && entries[position].element == element {
            let delta = _entries[position]._kernel.write(Presence(), at: stamp)
            return ORSet(uncheckedEntries: [Entry(element: element, kernel: delta)])
        }
        var kernel = DotKernel<Presence>()
        let delta = kernel.write(Presence(), at: stamp)
        _entries.insert(Entry(element: element, kernel: kernel), at: position)
        return ORSet(uncheckedEntries: [Entry(element: element, kernel: delta)])
    }

    /// Removes the insertions of `element` seen here and returns the delta (empty when the
    /// element is not present).
    @inlinable @discardableResult
    public mutating func remove(_ element: Element) -> ORSet {
        guard let index = index(of: element), !entries[index].kernel.isEmpty else { return ORSet() }
        let delta = _entries[index]._kernel.removeAll()
        return ORSet(uncheckedEntries: [Entry(element: element, kernel: delta)])
    }

    @inlinable
    internal init(uncheckedEntries: [Entry]) {
        _entries = uncheckedEntries
    }

    @inlinable
    internal func insertionPoint(of element: Element) -> Int {
        var low = 0
        var high = entries.count
        while low < high {
            let mid = (low + high) / 2
            if entries[mid].element < element { low = mid + 1 } else { high = mid }
        }
        return low
    }

    @inlinable
    internal func index(of element: Element) -> Int? {
        let position = insertionPoint(of: element)
        return position < entries.count && entries[position].element == element ? position : nil
    }

    @inlinable
    internal mutating func mergeEntry(_ entry: Entry) {
        let position = insertionPoint(of: entry.element)
        if position < entries.count && entries[position].element == entry.element {
            _entries[position]._kernel.merge(entry.kernel)
        } else {
            _entries.insert(entry, at: position)
        }
    }
}

/// The payload of a set element's insertion: there is nothing to say beyond "present".
public struct Presence: Hashable, Comparable, Sendable, Codable {
    @inlinable public init() {}
    @inlinable public static func < (lhs: Presence, rhs: Presence) -> Bool { false }
}

extension ORSet: Equatable {}

extension ORSet: Mergeable {
    /// Bottom kernels are never stored, so an empty entry list is exactly bottom.
    @inlinable public var isBottom: Bool { _entries.isEmpty }

    /// - Complexity: O(n + m); O(m log n) when `other` is a small delta.
    @inlinable
    public mutating func merge(_ other: ORSet) {
        if other.entries.isEmpty { return }
        if entries.isEmpty {
            _entries = other._entries
            return
        }
        if other.entries.count <= 2 {
            for entry in other.entries { mergeEntry(entry) }
            return
        }
        _entries = mergeSorted(_entries, other._entries, precedes: { $0.element < $1.element }) {
            var entry = $0
            entry._kernel.merge($1.kernel)
            return entry
        }
    }
}

extension ORSet: ObservedRemovable {
    /// Removes every element seen here and returns the delta.
    @discardableResult
    public mutating func removeAll() -> ORSet {
        var delta = [Entry]()
        for index in entries.indices where !entries[index].kernel.isEmpty {
            delta.append(Entry(element: entries[index].element, kernel: _entries[index]._kernel.removeAll()))
        }
        return ORSet(uncheckedEntries: delta)
    }
}
