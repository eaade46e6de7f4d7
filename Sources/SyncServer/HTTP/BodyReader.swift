import CRDT
import Domain
import Foundation
import Hummingbird
import NIOCore

/// Reads and decodes request bodies within a limit: the content type decides the format; JSON is
/// scanned once for depth and repeated keys before it is decoded, and a field the request type
/// does not know is refused (a client must not believe the server took it).
struct BodyReader: Sendable {
    /// The deepest nesting a JSON body may have (`limits.maxJSONDepth`).
    let maxJSONDepth: Int

    func read(_ request: Request, limit: Int) async throws -> ByteBuffer {
        if let length = request.headers[.contentLength].flatMap(Int.init), length > limit {
            throw Problem.tooLarge("the body is \(length) bytes; the limit is \(limit)")
        }
        do {
            return try await request.body.collect(upTo: limit)
        } catch {
            throw Problem.tooLarge("the body is larger than the limit of \(limit) bytes")
        }
    }

    func format(of request: Request) throws -> MessageFormat {
        let header = request.headers[.contentType]
        // The common spellings first, without splitting and lowercasing (a measurable share of
        // an empty pull's CPU).
        if header == "application/json" { return .json }
        if header == MessageFormat.binaryContentType { return .binary }
        let type = header?.split(separator: ";").first?.trimmingCharacters(in: .whitespaces).lowercased()
        switch type {
        case "application/json": return .json
        case MessageFormat.binaryContentType: return .binary
        default:
            throw Problem.unsupportedMediaType(
                "send application/json or \(MessageFormat.binaryContentType), not \(type ?? "no Content-Type")")
        }
    }

    /// A sync protocol message in either format, and the format it came in.
    func message<M: BinaryBlob & Codable>(
        _ type: M.Type, _ request: Request, limit: Int
    ) async throws
        -> (M, MessageFormat)
    {
        let format = try format(of: request)
        switch format {
        case .json: return (try await json(request, limit: limit), .json)
        case .binary:
            let body = try await read(request, limit: limit)
            do throws(BinaryDecodingError) {
                return (try M(blob: body.readableBytesView), .binary)
            } catch  where error.code == .unsupportedVersion {
                throw Problem(
                    .badRequest, "unsupported-protocol-version", "Unsupported protocol version",
                    "this server speaks sync protocol \(SyncProtocol.version): \(error); upgrade the client")
            } catch {
                throw Problem.badRequest("malformed-body", "the binary body cannot be decoded: \(error)")
            }
        }
    }

    func json<T: Codable>(_ request: Request, limit: Int) async throws -> T {
        let body = try await read(request, limit: limit)
        if try format(of: request) != .json {
            throw Problem.unsupportedMediaType("this route takes application/json")
        }
        let bytes = body.readableBytesView
        // One pass over the bytes before decoding: depth, duplicated keys, top-level keys.
        let scan = JSONKeys.scan(bytes, depthLimit: maxJSONDepth)
        if scan.deepest > maxJSONDepth {
            throw Problem.badRequest("too-deep", "the JSON nests deeper than \(maxJSONDepth) levels")
        }
        if let duplicate = scan.duplicate {
            throw Problem.badRequest("malformed-body", "the field \(duplicate) appears twice", field: duplicate)
        }
        let data = Data(bytes)
        let value: T
        do {
            value = try JSONDecoder().decode(T.self, from: data)
        } catch {
            throw Problem.badRequest("malformed-body", JSONKeys.describe(error), field: JSONKeys.field(of: error))
        }
        let unknown: [String]
        if let flat = T.self as? any FlatJSONMessage.Type {
            unknown = scan.topLevel.filter { !flat.jsonKeys.contains($0) }
        } else {
            unknown = (try? JSONKeys.unknownKeys(in: data, knownBy: value)) ?? []
        }
        if let first = unknown.first {
            throw Problem.badRequest(
                "unknown-field", "\(first) is not a field of this request (the server sets tenant, owner and sequence)",
                field: first)
        }
        return value
    }

    /// The problem a message of another protocol version gets.
    static func versionProblem(_ version: UInt8) -> Problem {
        Problem(
            .badRequest, "unsupported-protocol-version", "Unsupported protocol version",
            "this server speaks sync protocol \(SyncProtocol.version), not \(version); upgrade the client")
    }
}
