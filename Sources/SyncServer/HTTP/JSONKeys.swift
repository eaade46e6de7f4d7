import Domain
import Foundation

/// Strict JSON checks the Codable decoder does not make: nesting depth before decoding, and
/// keys the decoded type does not know (a client must not believe it set a field — tenant,
/// owner, sequence — that the server ignored).
enum JSONKeys {
    /// What one pass over a JSON body finds before it is decoded.
    struct Scan {
        /// The deepest nesting of arrays and objects (the pass stops once it exceeds the limit).
        var deepest = 0
        /// The first key that appears twice in one object (JSONDecoder would silently keep one
        /// of them: a client must not be able to smuggle a second value past a check).
        var duplicate: String?
        /// The keys of the top-level object.
        var topLevel: [String] = []
    }

    /// Scans `bytes` once (strings skipped): nesting depth up to `depthLimit` + 1, duplicated
    /// keys, top-level keys.
    static func scan(_ bytes: some Collection<UInt8>, depthLimit: Int) -> Scan {
        var result = Scan()
        var stack = [(isObject: Bool, keys: Set<[UInt8]>)]()
        var inString = false
        var escaped = false
        var current = [UInt8]()
        var lastString: [UInt8]?
        for byte in bytes {
            if inString {
                if escaped {
                    escaped = false
                } else if byte == UInt8(ascii: "\\") {
                    escaped = true
                } else if byte == UInt8(ascii: "\"") {
                    inString = false
                    lastString = current
                    continue
                }
                current.append(byte)
                continue
            }
            switch byte {
            case UInt8(ascii: "\""):
                inString = true
                current.removeAll(keepingCapacity: true)
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                stack.append((byte == UInt8(ascii: "{"), []))
                result.deepest = max(result.deepest, stack.count)
                if result.deepest > depthLimit { return result }
                lastString = nil
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                _ = stack.popLast()
                lastString = nil
            case UInt8(ascii: ":"):
                if let raw = lastString, let top = stack.indices.last, stack[top].isObject {
                    // Compared as the decoder will read it: `"curs\u006fr"` is a second `cursor`.
                    let key = decodedKey(raw)
                    if !stack[top].keys.insert(key).inserted {
                        result.duplicate = String(decoding: key, as: UTF8.self)
                        return result
                    }
                    if top == 0 { result.topLevel.append(String(decoding: key, as: UTF8.self)) }
                }
                lastString = nil
            case UInt8(ascii: " "), UInt8(ascii: "\n"), UInt8(ascii: "\r"), UInt8(ascii: "\t"): break
            default: lastString = nil
            }
        }
        return result
    }

    /// A key's text with its escapes decoded (a key without a backslash is its bytes).
    static func decodedKey(_ raw: [UInt8]) -> [UInt8] {
        guard raw.contains(UInt8(ascii: "\\")) else { return raw }
        let quoted = Data([UInt8(ascii: "\"")] + raw + [UInt8(ascii: "\"")])
        guard let text = (try? JSONSerialization.jsonObject(with: quoted, options: [.fragmentsAllowed])) as? String
        else { return raw }
        return Array(text.utf8)
    }

    /// Paths (`changes[0].tenant`) of keys in `data` that encoding `value` does not write.
    /// General but costly (it encodes the value and parses both); flat messages use
    /// `FlatJSONMessage.jsonKeys` instead.
    /// A key whose input value is `null` counts as known when absent (optional fields).
    static func unknownKeys(in data: Data, knownBy value: some Encodable) throws -> [String] {
        let input = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
        let known = try JSONSerialization.jsonObject(with: JSONEncoder().encode(value), options: [.fragmentsAllowed])
        var unknown = [String]()
        compare(input, known, path: "", into: &unknown)
        return unknown
    }

    private static func compare(_ input: Any, _ known: Any, path: String, into unknown: inout [String]) {
        if let object = input as? [String: Any] {
            let knownObject = known as? [String: Any] ?? [:]
            for key in object.keys.sorted() {
                let child = path.isEmpty ? key : "\(path).\(key)"
                if let knownChild = knownObject[key] {
                    compare(object[key]!, knownChild, path: child, into: &unknown)
                } else if !(object[key] is NSNull) {
                    unknown.append(child)
                }
            }
        } else if let array = input as? [Any], let knownArray = known as? [Any] {
            for (index, element) in array.enumerated() where index < knownArray.count {
                compare(element, knownArray[index], path: "\(path)[\(index)]", into: &unknown)
            }
        }
    }

    /// A one-line, field-naming description of a decoding error.
    static func describe(_ error: any Error) -> String {
        guard let error = error as? DecodingError else { return "\(error)" }
        func path(_ context: DecodingError.Context, _ last: (any CodingKey)? = nil) -> String {
            let keys = context.codingPath + (last.map { [$0] } ?? [])
            var text = ""
            for key in keys {
                if let index = key.intValue {
                    text += "[\(index)]"
                } else {
                    text += text.isEmpty ? key.stringValue : ".\(key.stringValue)"
                }
            }
            return text.isEmpty ? "the body" : text
        }
        switch error {
        case .keyNotFound(let key, let context): return "\(path(context, key)) is missing"
        case .typeMismatch(let type, let context): return "\(path(context)) must be \(typeName(type))"
        case .valueNotFound(let type, let context): return "\(path(context)) must be \(typeName(type)), not null"
        case .dataCorrupted(let context):
            if context.codingPath.isEmpty { return "the body is not valid JSON" }
            return "\(path(context)): \(context.debugDescription)"
        @unknown default: return "\(error)"
        }
    }

    /// The field path of a decoding error, for the problem document's `errors`.
    static func field(of error: any Error) -> String? {
        guard let error = error as? DecodingError else { return nil }
        let context: DecodingError.Context
        var last: (any CodingKey)?
        switch error {
        case .keyNotFound(let key, let ctx):
            context = ctx
            last = key
        case .typeMismatch(_, let ctx), .valueNotFound(_, let ctx), .dataCorrupted(let ctx): context = ctx
        @unknown default: return nil
        }
        let keys = context.codingPath + (last.map { [$0] } ?? [])
        return keys.isEmpty ? nil : keys.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
    }

    private static func typeName(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: return "a string"
        case is Bool.Type: return "true or false"
        case is Int.Type, is UInt64.Type, is Int64.Type, is UInt8.Type, is UInt32.Type: return "a whole number"
        case is Double.Type: return "a number"
        default:
            let name = "\(type)"
            if name.hasPrefix("Array") { return "an array" }
            if name.hasPrefix("Dictionary") { return "an object" }
            return "a \(name)"
        }
    }
}

/// A JSON request whose fields are all scalars: its known keys are listed, so the unknown-field
/// check is a set lookup per key instead of a re-encode (the pull is the hot route).
/// `FlatJSONMessageTests` checks each list against the type's own encoding.
protocol FlatJSONMessage {
    static var jsonKeys: Set<String> { get }
}

extension PullRequest: FlatJSONMessage {
    static let jsonKeys: Set<String> = ["protocolVersion", "epoch", "cursor", "maxChanges", "maxBytes"]
}
