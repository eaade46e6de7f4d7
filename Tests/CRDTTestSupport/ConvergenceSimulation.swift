import CRDT

/// The seeded multi-replica convergence fuzzer.
///
/// 2–5 replicas of `ORMap<UInt8, TestRecord>` make random edits (register writes, set inserts
/// and removes, record removals) and ship deltas over a network that reorders, duplicates and
/// drops messages; replicas also send each other full states now and then. At the end every
/// dropped message is re-sent and everything is delivered. Then every replica must equal every
/// other, and all must show what a deliberately naive reference model shows.
///
/// The reference model knows nothing of dots, contexts or version vectors: it keeps every
/// operation with the explicit set of operations it superseded (everything its replica had
/// received on that key), and a value is live when no operation superseded it.
public struct ConvergenceSimulation {
    public typealias State = ORMap<UInt8, TestRecord>

    enum Key: Hashable, Comparable {
        case name(UInt8)
        case score(UInt8)
        case tag(UInt8, UInt8)

        var record: UInt8 {
            switch self {
            case .name(let record), .score(let record), .tag(let record, _): record
            }
        }
    }

    enum Kind: Hashable {
        case write(String)
        case add
        case clear
    }

    struct Operation {
        let key: Key
        let kind: Kind
        let stamp: HLC
        let supersedes: Set<Int>
    }

    struct Message {
        let to: Int
        let payload: State
        let operations: Set<Int>
    }

    struct Replica {
        var state = State()
        var clock: HybridLogicalClock
        var received = Set<Int>()
        /// How far this replica's wall clock is off, in ms.
        let skew: Int64
    }

    public let seed: UInt64
    private var rng: SeededRandom
    private var replicas: [Replica] = []
    private var operations: [Operation] = []
    private var pending: [Message] = []
    private var dropped: [Message] = []
    private var wall: UInt64 = 1_764_000_000_000
    public private(set) var messagesDelivered = 0
    public private(set) var messagesDropped = 0
    public private(set) var messagesDuplicated = 0

    public init(seed: UInt64) {
        self.seed = seed
        rng = SeededRandom(seed: seed)
        let count = rng.int(2...5)
        for index in 0..<count {
            // Up to an hour of skew either way; the drift bound is set wide enough to accept it,
            // because this test is about convergence (ClockSkewTests covers refusals).
            let skew = Int64(rng.int(-3_600_000...3_600_000))
            let id = ReplicaID(UInt64(index + 1) << 32 | rng.next() >> 40)
            replicas.append(Replica(clock: HybridLogicalClock(replica: id, maxForwardDrift: 3 * 3_600_000), skew: skew))
        }
    }

    /// Runs the simulation and returns a description of every violation (empty when it passed).
    public mutating func run(steps: Int? = nil) -> [String] {
        let steps = steps ?? rng.int(10...80)
        for _ in 0..<steps { step() }
        // Heal the network: re-send everything dropped, then deliver everything.
        pending.append(contentsOf: dropped)
        dropped.removeAll()
        while !pending.isEmpty {
            deliver(pending.remove(at: rng.int(0...pending.count - 1)))
        }
        return violations()
    }

    private mutating func step() {
        wall += UInt64(rng.int(0...50))
        switch rng.int(0...9) {
        case 0...3:
            operate(at: rng.int(0...replicas.count - 1))
        case 4...7:
            guard !pending.isEmpty else { return }
            let index = rng.int(0...pending.count - 1)
            if rng.chance(0.15) {
                dropped.append(pending.remove(at: index))
                messagesDropped += 1
            } else if rng.chance(0.15) {
                messagesDuplicated += 1
                deliver(pending[index])  // delivered now, and again later
            } else {
                deliver(pending.remove(at: index))
            }
        case 8:
            // Anti-entropy: a full state travels too, through the same faulty network.
            let from = rng.int(0...replicas.count - 1)
            let to = rng.int(0...replicas.count - 1)
            if from != to {
                pending.append(Message(to: to, payload: replicas[from].state, operations: replicas[from].received))
            }
        default:
            wall += UInt64(rng.int(0...5_000))
        }
    }

    private func wallClock(of replica: Int) -> UInt64 {
        UInt64(Int64(wall) + replicas[replica].skew)
    }

    private mutating func operate(at index: Int) {
        let stamp = replicas[index].clock.now(wall: wallClock(of: index))
        let record = UInt8(rng.int(0...3))
        var delta = State()
        var issued = [(Key, Kind)]()
        switch rng.int(0...9) {
        case 0...2:
            let value = rng.pick(["Jana", "Petr", "Eva", "Ondřej", "Zoë", ""])
            delta = replicas[index].state.update(record) { r in
                var d = TestRecord()
                d.name = r.name.write(value, at: stamp)
                return d
            }
            issued = [(.name(record), .write(value))]
        case 3...4:
            let score = UInt64(rng.int(0...5))
            delta = replicas[index].state.update(record) { r in
                var d = TestRecord()
                d.score = r.score.write(score, at: stamp)
                return d
            }
            issued = [(.score(record), .write(String(score)))]
        case 5...6:
            let tag = UInt8(rng.int(0...4))
            delta = replicas[index].state.update(record) { r in
                var d = TestRecord()
                d.tags = r.tags.insert(tag, at: stamp)
                return d
            }
            issued = [(.tag(record, tag), .add)]
        case 7...8:
            let tag = UInt8(rng.int(0...4))
            delta = replicas[index].state.update(record) { r in
                var d = TestRecord()
                d.tags = r.tags.remove(tag)
                return d
            }
            issued = [(.tag(record, tag), .clear)]
        default:
            delta = replicas[index].state.remove(record)
            let keys = Set(replicas[index].received.map { operations[$0].key }.filter { $0.record == record })
            issued = keys.sorted().map { ($0, .clear) }
        }
        var ids = Set<Int>()
        for (key, kind) in issued {
            let seen = replicas[index].received.filter { operations[$0].key == key }
            operations.append(Operation(key: key, kind: kind, stamp: stamp, supersedes: seen))
            ids.insert(operations.count - 1)
        }
        replicas[index].received.formUnion(ids)
        for other in replicas.indices where other != index {
            pending.append(Message(to: other, payload: delta, operations: ids))
        }
    }

    private mutating func deliver(_ message: Message) {
        messagesDelivered += 1
        replicas[message.to].state.merge(message.payload)
        replicas[message.to].received.formUnion(message.operations)
        if let newest = message.operations.map({ operations[$0].stamp }).max() {
            _ = try? replicas[message.to].clock.receive(newest, wall: wallClock(of: message.to))
        }
    }

    /// What a person would see: per record, the name and score siblings and the tags.
    struct View: Equatable, CustomStringConvertible {
        var names: [UInt8: Set<String>] = [:]
        var scores: [UInt8: Set<String>] = [:]
        var tags: [UInt8: Set<UInt8>] = [:]

        var description: String { "names \(names) scores \(scores) tags \(tags)" }
    }

    private func view(of state: State) -> View {
        var view = View()
        for (record, value) in state.valueByKey {
            if !value.name.values.isEmpty { view.names[record] = Set(value.name.values) }
            if !value.score.values.isEmpty { view.scores[record] = Set(value.score.values.map(String.init)) }
            if !value.tags.elements.isEmpty { view.tags[record] = Set(value.tags.elements) }
        }
        return view
    }

    private func referenceView() -> View {
        let superseded = operations.reduce(into: Set<Int>()) { $0.formUnion($1.supersedes) }
        var view = View()
        for (id, operation) in operations.enumerated() where !superseded.contains(id) {
            switch (operation.key, operation.kind) {
            case (.name(let record), .write(let value)): view.names[record, default: []].insert(value)
            case (.score(let record), .write(let value)): view.scores[record, default: []].insert(value)
            case (.tag(let record, let tag), .add): view.tags[record, default: []].insert(tag)
            default: break
            }
        }
        return view
    }

    private func violations() -> [String] {
        var problems = [String]()
        let first = replicas[0].state
        for (index, replica) in replicas.enumerated().dropFirst() where replica.state != first {
            problems.append("replica \(index) differs from replica 0 after all messages were delivered")
        }
        let expected = referenceView()
        for (index, replica) in replicas.enumerated() {
            let actual = view(of: replica.state)
            if actual != expected {
                problems.append("replica \(index) shows \(actual)\n  reference shows \(expected)")
            }
        }
        // A write made after observing another is stamped later, whatever the wall clocks say.
        for operation in operations {
            for earlier in operation.supersedes where !(operations[earlier].stamp < operation.stamp) {
                problems.append("\(operation.stamp) superseded \(operations[earlier].stamp) but is not later")
            }
        }
        return problems
    }
}
