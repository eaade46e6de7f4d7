import CRDTTestSupport
import Foundation

/// A valid request to start mutating from: route, content type and body bytes.
public struct CapturedRequest: Sendable {
    public let path: String
    public let contentType: String
    public let body: [UInt8]

    public init(_ path: String, _ contentType: String, _ body: [UInt8]) {
        self.path = path
        self.contentType = contentType
        self.body = body
    }

    public var isJSON: Bool { contentType == "application/json" }
}

/// Turns captured valid requests into broken ones, deterministically from a seed, so a failing
/// request can be replayed with `KRALIKI_SEED`. Shared by `BadInputTests` (in-process server)
/// and the hostile-input drill (the real `sync-server` binary).
///
/// Byte-level mutations (flip, truncate, insert, delete) find parser edge cases; structural ones
/// (wrong types, unknown and duplicated fields, oversized values, deep nesting, invalid UTF-8,
/// huge batches, negative counts) reach the checks behind a successful parse.
public struct RequestMutator {
    /// One kind of damage. The raw value names it in the drill's figures.
    public enum Mutation: String, CaseIterable, Sendable {
        case byteFlip = "byte flip"
        case truncation
        case byteInsert = "byte insert"
        case byteDelete = "byte delete"
        case wrongType = "wrong type"
        case unknownField = "unknown field"
        case duplicatedField = "duplicated field"
        case oversizedValue = "oversized value"
        case deepNesting = "deep nesting"
        case invalidUTF8 = "invalid UTF-8"
        case hugeBatch = "huge batch"
        case negativeCount = "negative count"

        /// The mutations that work on any bytes (binary bodies too).
        public static let byteLevel: [Mutation] = [.byteFlip, .truncation, .byteInsert, .byteDelete]
    }

    public var random: SeededRandom

    public init(seed: UInt64) { random = SeededRandom(seed: seed) }

    /// `request` with one mutation drawn from `kinds` (structural ones only apply to JSON
    /// bodies; a binary body gets a byte-level one instead).
    public mutating func mutate(
        _ request: CapturedRequest, kinds: [Mutation] = Mutation.allCases
    ) -> (body: [UInt8], mutation: Mutation) {
        var kind = random.pick(kinds)
        if !request.isJSON && !Mutation.byteLevel.contains(kind) { kind = random.pick(Mutation.byteLevel) }
        return (apply(kind, to: request.body), kind)
    }

    /// `body` damaged by `kind`.
    public mutating func apply(_ kind: Mutation, to original: [UInt8]) -> [UInt8] {
        var body = original
        switch kind {
        case .byteFlip:
            if !body.isEmpty { body[random.int(0...(body.count - 1))] = UInt8(random.int(0...255)) }
        case .truncation:
            body = Array(body.prefix(random.int(0...body.count)))
        case .byteInsert:
            body.insert(UInt8(random.int(0...255)), at: random.int(0...body.count))
        case .byteDelete:
            if body.count > 1 { body.remove(at: random.int(0...(body.count - 1))) }
        case .wrongType, .oversizedValue, .negativeCount, .hugeBatch:
            body = replacingValue(in: body, kind)
        case .unknownField:
            body = splicing(#""\#(random.pick(["tenant", "admin", "role", "__proto__", "x"]))":"acme","#, into: body)
        case .duplicatedField:
            // JSONSerialization keeps only one of two equal keys, so splice the duplicate in as text.
            if let key = random.pick(keyPaths(of: body) + [[]]).first {
                body = splicing(#""\#(key)":\#(random.pick(Self.scalars)),"#, into: body)
            }
        case .deepNesting:
            let depth = random.int(60...2_000)
            let nested = String(repeating: "[", count: depth) + String(repeating: "]", count: depth)
            body = random.chance(0.5) ? Array(nested.utf8) : splicing(#""deep":\#(nested),"#, into: body)
        case .invalidUTF8:
            let invalid: [[UInt8]] = [
                [0xFF], [0xC0, 0x80], [0xED, 0xA0, 0x80], [0xF8, 0x88, 0x80, 0x80, 0x80], [0xC3],
            ]
            // Inside a string value when there is one (past the quote of a key or value).
            let quotes = body.indices.filter { body[$0] == 0x22 }
            let at = quotes.isEmpty ? random.int(0...body.count) : random.pick(quotes) + 1
            body.insert(contentsOf: random.pick(invalid), at: at)
        }
        return body
    }

    static let scalars = ["null", "true", "-1", "0", "1e309", "\"\"", "[]", "{}", "18446744073709551616", "\"x\""]

    /// Replaces one value somewhere in the JSON document (found by walking objects and arrays).
    private mutating func replacingValue(in body: [UInt8], _ kind: Mutation) -> [UInt8] {
        guard var root = try? JSONSerialization.jsonObject(with: Data(body), options: [.fragmentsAllowed]) else {
            return apply(.byteFlip, to: body)
        }
        let paths = keyPaths(of: body)
        let replacement: Any
        switch kind {
        case .wrongType:
            replacement = random.pick(
                [
                    NSNull(), true, "string", 3.5, [1, 2], ["a": 1], -7, String(repeating: "9", count: 40),
                ] as [Any])
        case .oversizedValue:
            replacement = random.pick(
                [
                    String(repeating: "A", count: random.int(1_000...100_000)), UInt64.max,
                    Double.greatestFiniteMagnitude,
                    Array(repeating: "x", count: random.int(1_000...20_000)),
                ] as [Any])
        case .negativeCount:
            replacement = random.pick([-1, Int.min, -9_999_999_999, -0.5] as [Any])
        default:  // huge batch: many copies of an array's element (or of the whole document)
            let count = random.int(1_001...4_000)
            if let arrayPath = random.pick(paths.filter { value(at: $0, in: root) is [Any] } + [[]]) as [String]?,
                let array = value(at: arrayPath, in: root) as? [Any]
            {
                let element: Any = array.first ?? ["localSequence": 1]
                root = setting(Array(repeating: element, count: count), at: arrayPath, in: root)
            } else {
                root = Array(repeating: root, count: count)
            }
            return
                (try? Array(JSONSerialization.data(withJSONObject: root, options: [.sortedKeys, .fragmentsAllowed])))
                ?? body
        }
        let path = random.pick(paths + [[]])
        let mutated = setting(replacement, at: path, in: root)
        return (try? Array(JSONSerialization.data(withJSONObject: mutated, options: [.sortedKeys, .fragmentsAllowed])))
            ?? body
    }

    /// Every path to a value (object keys and array indices as text), in a stable order, so a
    /// seed picks the same one in every process (dictionary order is not stable across runs).
    private func keyPaths(of body: [UInt8]) -> [[String]] {
        guard let root = try? JSONSerialization.jsonObject(with: Data(body), options: [.fragmentsAllowed]) else {
            return []
        }
        var paths = [[String]]()
        func walk(_ value: Any, _ path: [String]) {
            guard paths.count < 2_000 else { return }
            if let object = value as? [String: Any] {
                for key in object.keys.sorted() {
                    paths.append(path + [key])
                    walk(object[key]!, path + [key])
                }
            } else if let array = value as? [Any] {
                for (index, element) in array.enumerated().prefix(4) {
                    paths.append(path + ["\(index)"])
                    walk(element, path + ["\(index)"])
                }
            }
        }
        walk(root, [])
        return paths
    }

    private func value(at path: [String], in root: Any) -> Any? {
        var current: Any? = root
        for part in path {
            if let object = current as? [String: Any] {
                current = object[part]
            } else if let array = current as? [Any], let index = Int(part), array.indices.contains(index) {
                current = array[index]
            } else {
                return nil
            }
        }
        return current
    }

    private func setting(_ replacement: Any, at path: [String], in root: Any) -> Any {
        guard let first = path.first else { return replacement }
        let rest = Array(path.dropFirst())
        if var object = root as? [String: Any], let child = object[first] {
            object[first] = setting(replacement, at: rest, in: child)
            return object
        }
        if var array = root as? [Any], let index = Int(first), array.indices.contains(index) {
            array[index] = setting(replacement, at: rest, in: array[index])
            return array
        }
        return root
    }

    /// `member` inserted right after the first `{` (or the document wrapped in an object with it).
    private func splicing(_ member: String, into body: [UInt8]) -> [UInt8] {
        guard let brace = body.firstIndex(of: 0x7B) else { return Array("{\(member)\"v\":0}".utf8) }
        var result = body
        var text = Array(member.utf8)
        // `{}` must not become `{"k":v,}`: drop the comma when the object is empty.
        if body.count > brace + 1, body[brace + 1] == 0x7D { text.removeLast() }
        result.insert(contentsOf: text, at: brace + 1)
        return result
    }
}
